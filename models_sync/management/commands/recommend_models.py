from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from models_sync import services


class Command(BaseCommand):
    help = "Recommend free models for a task, with the reasons of each score."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--task", required=True, choices=services.TASKS)
        parser.add_argument("--limit", type=int, default=5)
        parser.add_argument("--vision", action="store_true", help="Only models that read images.")
        parser.add_argument("--min-context", type=int, default=0, metavar="TOKENS")

    def handle(self, *args: Any, **options: Any) -> None:
        if not 1 <= options["limit"] <= 50:
            raise CommandError(_("--limit must be from 1 to 50"))
        try:
            results = services.recommend(
                options["task"],
                needs_vision=options["vision"],
                min_context=max(0, options["min_context"]),
                limit=options["limit"],
            )
        except services.ModelsUnavailable as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(_("🎯 Recommended for %(task)s") % {"task": options["task"]})
        if not results:
            self.stdout.write(_("(no free model fits)"))
        for index, item in enumerate(results, start=1):
            model = item["model"]
            self.stdout.write(f"{index:2d}. {model['name']}  [{model['id']}]  {item['score']:g}")
            self.stdout.write(f"    {'; '.join(item['reasons'])}")
