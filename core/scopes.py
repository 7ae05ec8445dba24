"""The API key scopes, one per endpoint family. A key carries any subset of them."""

WORKLIST_READ = "worklist:read"
WORKLIST_WRITE = "worklist:write"
EXAMS_READ = "exams:read"
EXAMS_WRITE = "exams:write"
CALLBACKS_WRITE = "callbacks:write"
CALLBACKS_READ = "callbacks:read"
VIEWER_TOKEN = "viewer:token"  # noqa: S105 (a scope name, not a secret)
UID = "uid"
AUDIT_READ = "audit:read"

ALL_SCOPES: dict[str, str] = {
    WORKLIST_READ: "List workitems",
    WORKLIST_WRITE: "Create and delete workitems",
    EXAMS_READ: "Query and retrieve exams",
    EXAMS_WRITE: "Upload exams",
    CALLBACKS_WRITE: "Post PACS new-exam callbacks (the PACS's own key)",
    CALLBACKS_READ: "Read stored callback events and deliveries, replay deliveries",
    VIEWER_TOKEN: "Issue viewer tokens",
    UID: "Generate DICOM UIDs",
    AUDIT_READ: "Read the audit trail",
}
