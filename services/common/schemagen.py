"""The machine-readable contract, generated from the code's own models.

``python -m services.common.schemagen OUTDIR`` writes

- ``OUTDIR/events/<type>.json``: a JSON Schema (2020-12) per event type: the whole
  CloudEvent, ``type`` a constant and ``data`` that type's model;
- ``OUTDIR/asyncapi-<app>.json``: the AsyncAPI 3.0 document FastStream generates from each
  service's app (``build_app(settings)`` in ``services.<app>.entrypoints.kafka``), built with
  the default settings so that the contract's default topic names appear, with no broker;
- ``OUTDIR/asyncapi.json``: one AsyncAPI document for the whole system (every app's broker);
- ``OUTDIR/README.md``: an index;
- with ``--limits-page PAGE``, the tables of ``PAGE`` (``docs/limits.md``): the bound of
  every envelope attribute and event type field, between two marker lines; the prose
  around them is the page's own.

An app whose module is not there yet is left out (with a note on stderr). Output is
deterministic (sorted keys, indent 2, trailing newline), so ``--check`` can compare the
files in OUTDIR (and PAGE) with what the models say now and exit 1 listing the stale ones.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import create_model
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from services.common.contract import ALL_EVENT_TYPES, CloudEvent, EventData
from services.common.contract.limits_doc import tables
from services.common.settings import CommonSettings

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
TITLE = "service-recovery"
# Generated files live under these names; anything else in OUTDIR is left alone.
_MANAGED = ("events/*.json", "asyncapi*.json", "README.md")


@dataclass(frozen=True)
class AppSource:
    name: str
    module: str
    settings_module: str
    settings_class: str


APPS = (
    AppSource("recovery", "services.recovery.entrypoints.kafka",
              "services.recovery.settings", "RecoverySettings"),
    AppSource("notifier", "services.notifier.entrypoints.kafka",
              "services.notifier.settings", "NotifierSettings"),
)  # fmt: skip


# --------------------------------------------------------------------------- event schemas


def default_topic(model: type[EventData]) -> str:
    default: str = CommonSettings.model_fields[f"topic_{model.TOPIC}"].default
    return default


def event_schema(model: type[EventData]) -> dict[str, Any]:
    """The JSON Schema of a whole CloudEvent of ``model``'s type."""
    doc = (model.__doc__ or "").strip().splitlines()
    fields: dict[str, Any] = {
        # Required on the wire (CloudEvents 1.0), though the model fills it in for our own.
        "specversion": (Literal["1.0"], ...),
        "type": (Literal[model.TYPE], ...),
        "data": (model, ...),
    }
    envelope = create_model(model.__name__ + "Event", __base__=CloudEvent, **fields)
    schema: dict[str, Any] = envelope.model_json_schema(mode="validation")
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        **schema,
        "title": model.TYPE,
        "description": (doc[0] + " " if doc else "")
        + f"A CloudEvents 1.0 event (structured JSON) on the `{default_topic(model)}` topic, "
        "keyed by the customer id. Unknown fields are ignored.",
        "x-logical-topic": model.TOPIC,
        "x-default-topic": default_topic(model),
    }


def event_schemas() -> dict[str, dict[str, Any]]:
    return {f"events/{m.TYPE}.json": event_schema(m) for m in ALL_EVENT_TYPES}


# --------------------------------------------------------------------------- AsyncAPI


def _defaults_only(cls: type[BaseSettings]) -> BaseSettings:
    """``cls`` with its defaults, whatever the environment says: the documents describe the
    contract's default topic names, not this machine's."""

    class Defaults(cls):  # type: ignore[valid-type,misc]
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings,)

    settings: BaseSettings = Defaults()
    return settings


def load_app(source: AppSource) -> Any | None:
    """The app ``build_app`` makes, or None (with a note) if the module is not there yet."""
    try:
        module = importlib.import_module(source.module)
    except ModuleNotFoundError as exc:
        # Only the app's own module missing means "not yet"; a broken import inside it is
        # a bug and propagates.
        if exc.name is None or not source.module.startswith(exc.name):
            raise
        print(f"note: {source.module} is not there yet; no AsyncAPI for {source.name}",
              file=sys.stderr)  # fmt: skip
        return None
    build_app = getattr(module, "build_app", None)
    if build_app is None:
        print(f"note: {source.module} has no build_app(); no AsyncAPI for {source.name}",
              file=sys.stderr)  # fmt: skip
        return None
    settings_cls = getattr(importlib.import_module(source.settings_module), source.settings_class)
    return build_app(_defaults_only(settings_cls))


def asyncapi_documents(apps: Sequence[AppSource] = APPS) -> dict[str, dict[str, Any]]:
    from faststream.specification import AsyncAPI

    docs: dict[str, dict[str, Any]] = {}
    brokers: list[Any] = []
    for source in apps:
        app = load_app(source)
        if app is None:
            continue
        docs[f"asyncapi-{source.name}.json"] = app.schema.to_specification().to_jsonable()
        brokers.extend(app.brokers)
    whole = AsyncAPI(
        *brokers,
        title=TITLE,
        version="1",
        description="Every service's channels in one document; see asyncapi-<service>.json "
        "for each service alone and events/ for the JSON Schema of every event type.",
    )
    with warnings.catch_warnings(record=True) as caught:
        # Two apps describing one channel name differently: FastStream keeps the last and
        # warns. Say so, but the per-app documents stay exact.
        warnings.simplefilter("always")
        docs["asyncapi.json"] = whole.to_specification().to_jsonable()
    for w in caught:
        print(f"note: asyncapi.json: {w.message}", file=sys.stderr)
    return docs


# --------------------------------------------------------------------------- files


def render(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def readme() -> str:
    lines = [
        "# The wire contract, machine-readable",
        "",
        "Generated by `make schemas` (`python -m services.common.schemagen schemas`) from the",
        "code's models; `tests/unit/test_schemas.py` fails when this folder is stale. Do not",
        "edit by hand. docs/contract.md is the prose.",
        "",
        "- `asyncapi.json`: AsyncAPI 3.0, every service; `asyncapi-<service>.json`: one each.",
        "- `events/<type>.json`: JSON Schema (2020-12) of the whole CloudEvent per type:",
        "",
        "| type | default topic | schema |",
        "|---|---|---|",
    ]
    for m in ALL_EVENT_TYPES:
        lines.append(f"| `{m.TYPE}` | `{default_topic(m)}` | [events/{m.TYPE}.json](events/{m.TYPE}.json) |")
    return "\n".join(lines) + "\n"


def generate(apps: Sequence[AppSource] = APPS) -> dict[str, str]:
    """Every generated file: its path under OUTDIR and its text."""
    docs = {**event_schemas(), **asyncapi_documents(apps)}
    files = {path: render(doc) for path, doc in docs.items()}
    files["README.md"] = readme()
    return dict(sorted(files.items()))


LIMITS_COMMAND = "python -m services.common.schemagen schemas --limits-page docs/limits.md"
LIMITS_BEGIN = f"<!-- generated from the models by `{LIMITS_COMMAND}`: edit the models, not what follows -->"
LIMITS_END = "<!-- end of the generated part -->"


def limits_page(page: str) -> str:
    """``page`` with the part between its marker lines made what the models say now."""
    head, begin, rest = page.partition(LIMITS_BEGIN)
    _, end, tail = rest.partition(LIMITS_END)
    if not begin or not end:
        raise ValueError(f"the limits page needs the lines {LIMITS_BEGIN!r} and {LIMITS_END!r}")
    envelope = CloudEvent.model_json_schema(mode="validation")
    events = {m.TYPE: (default_topic(m), event_schema(m)) for m in ALL_EVENT_TYPES}
    return f"{head}{LIMITS_BEGIN}\n\n{tables(envelope, events)}\n\n{LIMITS_END}{tail}"


def _existing(outdir: Path) -> set[str]:
    return {p.relative_to(outdir).as_posix() for pattern in _MANAGED for p in outdir.glob(pattern)}


def stale_files(outdir: Path, files: dict[str, str]) -> list[str]:
    """Paths under ``outdir`` that differ from ``files``, are missing, or are left over."""
    stale = []
    for path, text in files.items():
        target = outdir / path
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            stale.append(path)
    stale.extend(_existing(outdir) - files.keys())
    return sorted(stale)


def write(outdir: Path, files: dict[str, str]) -> list[str]:
    """Write ``files`` under ``outdir`` and remove generated files no longer produced;
    return the paths that changed."""
    changed = stale_files(outdir, files)
    for path in _existing(outdir) - files.keys():
        (outdir / path).unlink()
    for path in changed:
        if path in files:
            target = outdir / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(files[path], encoding="utf-8")
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.common.schemagen",
        description="Write (or --check) the JSON Schemas and AsyncAPI documents of the contract.",
    )
    parser.add_argument("outdir", type=Path, help="the folder, normally schemas/")
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 if stale")
    parser.add_argument("--limits-page", type=Path, help="the page whose limits tables to write: docs/limits.md")
    args = parser.parse_args(argv)
    files = generate()
    page: dict[str, str] = {}  # the page's path: its text now, if stale
    if args.limits_page is not None:
        text = args.limits_page.read_text(encoding="utf-8")
        if limits_page(text) != text:
            page[str(args.limits_page)] = limits_page(text)
    if args.check:
        stale = stale_files(args.outdir, files) + list(page)
        if stale:
            again = f"`{LIMITS_COMMAND}`" if page else "`make schemas`"
            print(f"stale in {args.outdir} (run {again}):", file=sys.stderr)
            for path in stale:
                print(f"  {path}", file=sys.stderr)
            return 1
        print(f"{args.outdir}: {len(files)} files up to date")
        return 0
    changed = write(args.outdir, files)
    for path, text in page.items():
        Path(path).write_text(text, encoding="utf-8")
        changed.append(path)
    print(f"{args.outdir}: {len(files)} files, {len(changed)} changed")
    for path in changed:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
