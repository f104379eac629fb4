from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.translation import gettext as _

from models_sync import catalogues, conf
from models_sync.models import SyncRun
from models_sync.services import SyncError, iso, load_catalogue_from_db, sync_models

RULE = "═" * 80


class Command(BaseCommand):
    help = "Synchronise the free models from OpenRouter into the database."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--stats", action="store_true", help="Print statistics.")
        parser.add_argument(
            "--save", action="store_true", help="Write the free models to a JSON file."
        )
        parser.add_argument(
            "--output",
            metavar="FILE",
            help=f"File for --save (default ./{conf.default_output_file()}); implies --save.",
        )
        parser.add_argument(
            "--source",
            metavar="URL_OR_PATH",
            help="Read a snapshot from a local file or another URL instead of OpenRouter.",
        )
        parser.add_argument(
            "--catalogue",
            default="openrouter",
            help="Which catalogue to sync: openrouter (default) or one of MODELS_SYNC_CATALOGUES.",
        )
        parser.add_argument(
            "--diff", action="store_true", help="Print the changes this sync recorded."
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Accept an empty answer or one that marks most models unavailable.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        output = options["output"]
        save = options["save"] or bool(output)
        if output is not None and not output.strip():
            raise CommandError(_("--output needs a file name"))
        target = Path(output or conf.default_output_file())
        if save and target.is_dir():
            raise CommandError(_("--output %(path)s is a directory") % {"path": target})
        if save and not target.resolve().parent.is_dir():
            raise CommandError(_("--output %(path)s: no such directory") % {"path": target.parent})

        if options["catalogue"] not in catalogues.configured():
            raise CommandError(
                _("Unknown catalogue %(name)s; configured: %(names)s")
                % {"name": options["catalogue"], "names": ", ".join(catalogues.configured())}
            )
        self.stdout.write(_("🔄 Synchronising the OpenRouter models...") + "\n")
        self.stdout.write(_("📡 Fetching the models from the OpenRouter API..."))
        try:
            run = sync_models(
                trigger=SyncRun.Trigger.CLI,
                source=options["source"],
                force=options["force"],
                catalogue=options["catalogue"],
            )
        except SyncError as exc:
            raise CommandError(_("Sync failed: %(error)s") % {"error": exc.message}) from exc

        catalogue = load_catalogue_from_db()
        models = catalogue.models
        self.stdout.write(_("✅ %(count)d models fetched") % {"count": run.fetched_count} + "\n")
        self.stdout.write(_("🔍 Filtering the free models..."))
        self.stdout.write(_("✅ %(count)d free models found") % {"count": len(models)} + "\n")
        self.stdout.write(_("🔄 Converting to the application format..."))
        self.stdout.write(
            _("✅ %(count)d models converted and sorted") % {"count": len(models)} + "\n"
        )
        if run.skipped_count:
            self.stdout.write(
                self.style.WARNING(
                    _("⚠️  %(count)d malformed records skipped") % {"count": run.skipped_count}
                )
            )
        self._print_top(models)
        if options["stats"]:
            self._print_stats(catalogue.stats)
        if options["diff"]:
            self._print_diff(run)
        if save:
            self._save(target, models)

    def _print_top(self, models: list[dict[str, Any]]) -> None:
        self.stdout.write(_("🏆 TOP 10 FREE MODELS"))
        self.stdout.write(RULE)
        if not models:
            self.stdout.write(_("(no free models)"))
        for index, model in enumerate(models[:10], start=1):
            mark = "👁️ " if model["features"]["vision"] else "   "
            context = f"{round(model['contextLength'] / 1000)}k"
            self.stdout.write(
                f"{index:2d}. {mark}{model['name'][:40]:<40} {model['author'][:15]:<15} {context}"
            )
        self.stdout.write("")

    def _print_stats(self, stats: dict[str, Any]) -> None:
        self.stdout.write(_("📊 STATISTICS"))
        self.stdout.write(RULE)
        lines = [
            (_("Total:"), stats["total"]),
            (_("Total available:"), stats["totalAvailable"]),
            (_("Free:"), stats["free"]),
            (_("With vision:"), stats["withVision"]),
            (_("Average context:"), stats["averageContextLength"]),
            (_("Max context:"), stats["maxContextLength"]),
            (_("Min context:"), stats["minContextLength"]),
        ]
        for label, value in lines:
            self.stdout.write(f"{label:<22}{value}")
        self.stdout.write("")
        self.stdout.write(_("By author:"))
        total = stats["total"]
        for author, count in stats["byProvider"].items():
            share = 100 * count / total if total else 0
            self.stdout.write(f"  {author:<24}{count:>4}  ({share:.1f}%)")
        self.stdout.write("")

    def _print_diff(self, run: SyncRun) -> None:
        changes = list(run.changes.order_by("kind", "model_id"))
        self.stdout.write(_("📝 CHANGES (%(count)d)") % {"count": len(changes)})
        self.stdout.write(RULE)
        if not changes:
            self.stdout.write(_("(no changes)"))
        for change in changes:
            line = f"  {change.kind:<16} {change.model_id}"
            if change.before is not None or change.after is not None:
                before = json.dumps(change.before, ensure_ascii=False)
                after = json.dumps(change.after, ensure_ascii=False)
                line += f"  {before} → {after}"
            self.stdout.write(line)
        self.stdout.write("")

    def _save(self, target: Path, models: list[dict[str, Any]]) -> None:
        document = {"timestamp": iso(timezone.now()), "count": len(models), "models": models}
        try:
            target.write_text(json.dumps(document, ensure_ascii=False, indent=2), "utf-8")
        except OSError as exc:
            raise CommandError(
                _("Could not write %(path)s: %(error)s")
                % {"path": target, "error": exc.strerror or exc}
            ) from exc
        self.stdout.write(
            _("💾 %(count)d models saved to %(path)s") % {"count": len(models), "path": target}
        )
