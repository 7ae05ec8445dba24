"""DIMSE status codes, defined once: C-ECHO, C-FIND, C-STORE, the DIMSE-N services of MPPS, the
Unified Procedure Step statuses that UPS-RS answers in its error bodies, and the Failure Reason
(0008,1197) of a STOW-RS response, which takes the Storage Service's codes (PS3.18 table I.2-2).

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

# Failures of the DIMSE-N services (PS3.7 Annex C; MPPS N-CREATE / N-SET: PS3.4 F.7.2.1.4, F.7.2.2.4).
INVALID_ATTRIBUTE_VALUE = 0x0106
NO_SUCH_SOP_INSTANCE = 0x0112
NO_SUCH_SOP_CLASS = 0x0118
MISSING_ATTRIBUTE = 0x0120
MISSING_ATTRIBUTE_VALUE = 0x0121

# Unified Procedure Step (PS3.4 Tables CC.2.1-2, CC.2.2-2, CC.2.3-2, CC.2.5-2, CC.2.6-2).
UPS_ALREADY_CANCELED = 0xB304  # Warning: the UPS is already in the requested state of CANCELED
UPS_ALREADY_COMPLETED_WARNING = 0xB306  # Warning: ... of COMPLETED
UPS_MAY_NO_LONGER_BE_UPDATED = 0xC300
UPS_TRANSACTION_UID_NOT_CORRECT = 0xC301
UPS_ALREADY_IN_PROGRESS = 0xC302
UPS_MAY_ONLY_BECOME_SCHEDULED_VIA_CREATE = 0xC303
UPS_FINAL_STATE_REQUIREMENTS_NOT_MET = 0xC304
UPS_NO_SUCH_INSTANCE = 0xC307
UPS_NOT_YET_IN_PROGRESS = 0xC310
UPS_ALREADY_COMPLETED = 0xC311  # Failure of a cancel request

# Failures, service-specific.
OUT_OF_RESOURCES = 0xA700  # Storage: Refused, out of resources (PS3.4 B.2.3)
# Storage: Data Set does not match SOP Class; C-FIND: Identifier does not match SOP Class.
DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000  # Storage and C-FIND: Error, cannot understand
UNABLE_TO_PROCESS = 0xC001  # C-FIND: Failed, unable to process

# C-MOVE / C-GET (PS3.4 C.4.2.1.5, C.4.3.1.4).
OUT_OF_RESOURCES_MATCHES = 0xA701  # Refused: out of resources, unable to calculate number of matches
OUT_OF_RESOURCES_SUBOPERATIONS = 0xA702  # Refused: out of resources, unable to perform sub-operations
MOVE_DESTINATION_UNKNOWN = 0xA801
SUBOPERATIONS_WARNING = 0xB000  # sub-operations complete, one or more failures or warnings

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
