from django.apps import AppConfig


class ExamsConfig(AppConfig):
    name = "exams"

    def ready(self):
        from dicomsvc.dicom import logsafe
        from exams import checks  # noqa: F401 - registers the system check

        # Uploaded headers are parsed here: pydicom must not log their values.
        logsafe.install()
