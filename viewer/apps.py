from django.apps import AppConfig


class ViewerConfig(AppConfig):
    name = "viewer"

    def ready(self) -> None:
        from viewer import checks  # noqa: F401 (registers the system checks)
