from django.apps import AppConfig


class DimseConfig(AppConfig):
    name = "dimse"
    verbose_name = "DICOM network (DIMSE)"

    def ready(self) -> None:
        import logging

        from pynetdicom import _config

        from dimse import checks  # noqa: F401  (registers the system checks)

        # pynetdicom logs every C-FIND identifier and C-STORE header at INFO: patient data. Our own
        # "dicomsvc.dimse" logger says what happened without it.
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
        # ... and it formats each identifier (pretty_dataset) and every PDU before the logger
        # decides to drop the line: for a 40-answer worklist query that formatting was a third of
        # the listener's CPU. Its standard event logging and identifier logging are off.
        _config.LOG_HANDLER_LEVEL = "none"
        _config.LOG_REQUEST_IDENTIFIERS = False
        _config.LOG_RESPONSE_IDENTIFIERS = False
