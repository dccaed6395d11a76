from django.core.management.base import BaseCommand

from apps.core.key_rotation import reencrypt_all


class Command(BaseCommand):
    help = (
        "Re-encrypt every secret at rest (destination credentials, provider keys, webhook and "
        "budget secrets, TOTP secrets, ...) with the newest key of UNTRACE_ENCRYPTION_KEYS. "
        "Run it after prepending a new key; then the old key can be removed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="count what would change, write nothing")

    def handle(self, *args, dry_run: bool = False, **options):
        counts = reencrypt_all(dry_run=dry_run)
        verb = "would re-encrypt" if dry_run else "re-encrypted"
        for column, count in sorted(counts.items()):
            self.stdout.write(f"{column}: {verb} {count}")
        self.stdout.write(f"{verb} {sum(counts.values())} value(s)")
