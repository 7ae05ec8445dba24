from django.apps import AppConfig


class CallbacksConfig(AppConfig):
    name = "callbacks"

    def ready(self) -> None:
        from callbacks.conf import targets

        # A mistyped receiver URL or secret stops start-up instead of failing every delivery.
        targets()
