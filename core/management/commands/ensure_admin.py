import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from dicomsvc.env import env_str


class Command(BaseCommand):
    help = (
        "Create the first admin user when no superuser exists. Its name and password come from "
        "ADMIN_USERNAME / ADMIN_PASSWORD; without a password one is generated, printed once and kept in "
        "var/admin-password (mode 600)."
    )

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        username = env_str("ADMIN_USERNAME", "admin")
        password = env_str("ADMIN_PASSWORD")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(18)
        User.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(self.style.SUCCESS(f"Created the admin user '{username}'."))
        if generated:
            path = Path(settings.VAR_DIR) / "admin-password"
            path.write_text(password + "\n")
            path.chmod(0o600)
            self.stdout.write(f"Its password is: {password}")
            self.stdout.write(f"(also kept in {path}; change it after the first login)")
