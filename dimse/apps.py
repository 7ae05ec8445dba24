from django.apps import AppConfig


class DimseConfig(AppConfig):
    name = "dimse"
    verbose_name = "DICOM network (DIMSE)"

    def ready(self) -> None:
        import logging

        from dimse import checks  # noqa: F401  (registers the system checks)

        # pynetdicom logs every C-FIND identifier and C-STORE header at INFO: patient data. Our own
        # "dicomsvc.dimse" logger says what happened without it.
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
