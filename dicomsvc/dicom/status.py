"""DIMSE status codes, defined once: C-ECHO, C-FIND, C-STORE, and the Failure Reason (0008,1197)
of a STOW-RS response, which takes the Storage Service's codes (PS3.18 table I.2-2).

General codes are in PS3.7 Annex C; service-specific ones in PS3.4 (Storage B.2.3, Query/Retrieve
C-FIND C.4.1.1.4, Modality Worklist K.4.1.1.4).
"""

SUCCESS = 0x0000

# Pending and cancel (C-FIND: PS3.4 C.4.1.1.4, K.4.1.1.4).
PENDING = 0xFF00
PENDING_WARNING = 0xFF01  # matches continue; some optional keys were not supported for matching
CANCEL = 0xFE00

# Failures, general (PS3.7 Annex C).
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111  # here: the same SOP Instance UID with different content
SOP_CLASS_NOT_SUPPORTED = 0x0122
NOT_AUTHORIZED = 0x0124

# Failures, service-specific.
OUT_OF_RESOURCES = 0xA700  # Storage: Refused, out of resources (PS3.4 B.2.3)
# Storage: Data Set does not match SOP Class; C-FIND: Identifier does not match SOP Class.
DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000  # Storage and C-FIND: Error, cannot understand
UNABLE_TO_PROCESS = 0xC001  # C-FIND: Failed, unable to process

# The failure codes a C-STORE response may carry as they are; any other becomes CANNOT_UNDERSTAND.
STORE_FAILURES = frozenset(
    {
        OUT_OF_RESOURCES,
        DOES_NOT_MATCH_SOP_CLASS,
        CANNOT_UNDERSTAND,
        PROCESSING_FAILURE,
        DUPLICATE_SOP_INSTANCE,
        SOP_CLASS_NOT_SUPPORTED,
        NOT_AUTHORIZED,
    }
)
