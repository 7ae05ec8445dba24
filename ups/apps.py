from django.apps import AppConfig


class UpsConfig(AppConfig):
    name = "ups"
    verbose_name = "UPS-RS (Unified Procedure Step over DICOMweb)"
