from django.core.management.base import BaseCommand, CommandError

from core.scopes import ALL_SCOPES
from core.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key with the given scopes. The key is printed once; only its hash is stored."

    def add_arguments(self, parser):
        parser.add_argument("name", help="Who or what uses the key, e.g. 'RIS production'")
        parser.add_argument(
            "--scopes",
            nargs="+",
            required=True,
            metavar="SCOPE",
            help="Scopes, or 'all': " + ", ".join(ALL_SCOPES),
        )
        parser.add_argument("--quiet", action="store_true", help="Print only the key")

    def handle(self, *args, name, scopes, quiet, **options):
        if scopes == ["all"]:
            scopes = list(ALL_SCOPES)
        try:
            api_key, key = api_key_create(name=name, scopes=scopes)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if quiet:
            self.stdout.write(key)
            return
        self.stdout.write(f"API key '{api_key.name}' with scopes {', '.join(api_key.scopes)}:")
        self.stdout.write(key)
        self.stdout.write("Store it now: it is not shown again. Send it as 'Authorization: Bearer <key>'.")
