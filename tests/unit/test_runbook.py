"""docs/runbook.md and the alarms stay in step: one entry per alarm, no entry for an alarm that does not
exist, the same severity, every description linking its entry, and every command in the runbook real
(`pigeonhole ...` against the CLI's own parameters, `aws ...` against botocore's service models)."""

from __future__ import annotations

import functools
import re
import shlex
from dataclasses import fields
from pathlib import Path
from typing import Any

import botocore.exceptions
import botocore.session
import pytest
import typer.main
from botocore import xform_name

from pigeonhole import alarms as defs
from pigeonhole.naming import ResourceNames

RUNBOOK = Path(__file__).resolve().parents[2] / defs.RUNBOOK_PATH
LABELS = ("**Severity:**", "**Means:**", "**First checks:**", "**Run:**")
ALL_ALARMS: dict[str, defs.AlarmDef | defs.CompositeAlarmDef] = {a.suffix: a for a in defs.ALARMS} | {
    c.suffix: c for c in defs.COMPOSITES
}
# The AWS CLI's own options, valid on every operation (aws help, "Options").
AWS_GLOBAL = {"--region", "--query", "--output", "--profile", "--endpoint-url", "--no-paginate", "--debug"}
# The AWS CLI's command names that differ from botocore's service names.
AWS_CLI_SERVICES = {"deploy": "codedeploy", "s3api": "s3", "configservice": "config"}
AWS_PAGING = {"--max-items", "--starting-token", "--page-size"}


def _text() -> str:
    return RUNBOOK.read_text(encoding="utf-8")


def _sections(level: str, text: str) -> dict[str, str]:
    """Heading text -> body, for headings of exactly this level (`##` or `###`)."""
    parts = re.split(rf"^{level} (.+)$", text, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def _entries() -> dict[str, str]:
    alarms_section = _sections("##", _text())["Alarms"]
    return _sections("###", alarms_section)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def _commands() -> list[str]:
    """Every command line of the bash blocks (a `VAR=$(...)` line yields the command inside)."""
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", _text(), flags=re.DOTALL):
        for raw in block.splitlines():
            line = raw.strip()
            captured = re.fullmatch(r"[A-Z_]+=\$\((.*)\)", line)
            commands.append(captured.group(1) if captured else line)
    return [c for c in commands if c]


def test_every_alarm_has_an_entry() -> None:
    entries = _entries()
    missing = [s for s in ALL_ALARMS if s not in entries]
    assert not missing, "\n".join(
        f"docs/runbook.md has no entry for alarm {s!r}: add a '### {s}' section under '## Alarms' "
        "(copy the template there)"
        for s in missing
    )


def test_every_entry_names_an_alarm() -> None:
    unknown = [s for s in _entries() if s not in ALL_ALARMS]
    assert not unknown, "\n".join(
        f"docs/runbook.md has an entry '### {s}' but no alarm in functions/pigeonhole/alarms.py has that suffix"
        for s in unknown
    )


@pytest.mark.parametrize("suffix", sorted(ALL_ALARMS))
def test_entry_has_the_four_parts_and_the_alarms_severity(suffix: str) -> None:
    body = _entries().get(suffix)
    if body is None:
        pytest.skip(f"no entry for {suffix} (test_every_alarm_has_an_entry names it)")
    for label in LABELS:
        assert label in body, f"runbook entry {suffix!r} lacks {label}"
    stated = re.search(r"\*\*Severity:\*\* (page|ticket)", body)
    assert stated is not None, f"runbook entry {suffix!r}: severity must start with page or ticket"
    definition = ALL_ALARMS[suffix]
    assert stated.group(1) == definition.severity.value, (
        f"runbook entry {suffix!r} says {stated.group(1)}, alarms.py says {definition.severity.value}"
    )
    assert ("rollback" in body.split("**Means:**")[0]) == definition.rollback, (
        f"runbook entry {suffix!r}: say 'rollback' in the severity line exactly when the alarm rolls a canary back"
    )
    assert "```bash\n" in body, f"runbook entry {suffix!r} has no command to run"
    assert _slug(suffix) == suffix, f"{suffix!r} is not its own anchor"


@pytest.mark.parametrize("suffix", sorted(ALL_ALARMS))
def test_each_description_links_its_entry(suffix: str) -> None:
    definition = ALL_ALARMS[suffix]
    assert defs.alarm_description(definition).endswith(f"Runbook: docs/runbook.md#{suffix}")
    hosted = "https://example.com/" + "x" * 480 + "/runbook.md"  # as long as InfraConfig allows
    assert len(defs.alarm_description(definition, hosted)) <= defs.DESCRIPTION_LIMIT


def test_links_inside_the_runbook_resolve() -> None:
    text = _text()
    anchors = {_slug(h) for h in re.findall(r"^#{2,3} (.+)$", text, flags=re.MULTILINE)}
    broken = [a for a in re.findall(r"\]\(#([^)]+)\)", text) if a not in anchors]
    assert not broken, f"links to missing headings: {broken}"


def _pigeonhole_command(words: list[str]) -> tuple[Any, list[str]]:
    """The click command a `pigeonhole ...` line runs, and the words after its name."""
    from pigeonhole_tools.cli import app

    command: Any = typer.main.get_command(app)
    rest = words[1:]
    while hasattr(command, "commands"):  # a group (typer's own, not click.Group, in recent typer)
        assert rest, f"{shlex.join(words)}: names a group, not a command"
        sub = command.commands.get(rest[0])
        assert sub is not None, f"{shlex.join(words)}: no sub-command {rest[0]!r} (has {sorted(command.commands)})"
        command, rest = sub, rest[1:]
    return command, rest


def _check_pigeonhole(words: list[str]) -> None:
    command, tokens = _pigeonhole_command(words)
    options = {opt: p for p in command.params for opt in (*p.opts, *p.secondary_opts) if opt.startswith("-")}
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    positional, i = 0, 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("--"):
            param = options.get(token)
            assert param is not None, f"{shlex.join(words)}: {token} is not an option of {command.name}"
            i += 1 if getattr(param, "is_flag", False) else 2
        else:
            positional += 1
            i += 1
    assert positional == len(arguments), (
        f"{shlex.join(words)}: {positional} arguments, {command.name} takes {len(arguments)}"
    )


@functools.cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@functools.cache
def _pageable(service: str) -> frozenset[str]:
    """Operations the AWS CLI pages (they take --max-items, --starting-token, --page-size)."""
    session = _session()
    try:
        paginators = session.get_paginator_model(service)
    except botocore.exceptions.DataNotFoundError:
        return frozenset()
    pageable = set()
    for name in session.get_service_model(service).operation_names:
        try:
            paginators.get_paginator(name)
        except ValueError:
            continue
        pageable.add(name)
    return frozenset(pageable)


def _check_aws(words: list[str]) -> None:
    session = _session()
    service, operation = AWS_CLI_SERVICES.get(words[1], words[1]), words[2]
    assert service in session.get_available_services(), f"{shlex.join(words)}: no AWS service {service!r}"
    model = session.get_service_model(service)
    by_cli_name = {xform_name(name, "-"): name for name in model.operation_names}
    assert operation in by_cli_name, f"{shlex.join(words)}: {service} has no operation {operation!r}"
    op = model.operation_model(by_cli_name[operation])
    shapes = {xform_name(m, "-"): shape for m, shape in (op.input_shape.members if op.input_shape else {}).items()}
    members = set(shapes) | {f"no-{m}" for m in shapes}  # boolean members: --x / --no-x
    can_page = by_cli_name[operation] in _pageable(service)
    flag = None
    for token in words[3:]:
        if not token.startswith("--"):
            # A value: where the parameter (or its list's members) is an enum, the value must be one of it.
            shape = shapes.get(flag or "")
            shape = getattr(shape, "member", shape)
            allowed = getattr(shape, "enum", None)
            assert not allowed or token in allowed, f"{shlex.join(words)}: {flag} takes {allowed}, not {token!r}"
            continue
        flag = token[2:]
        if token in AWS_GLOBAL or (can_page and token in AWS_PAGING):
            continue
        assert token[2:] in members, f"{shlex.join(words)}: {token} is not a parameter of {service} {operation}"


def test_every_command_is_real() -> None:
    checked = 0
    for line in _commands():
        words = shlex.split(line)
        if words[0] == "pigeonhole":
            _check_pigeonhole(words)
        elif words[0] == "aws":
            _check_aws(words)
        else:
            pytest.fail(f"runbook command is neither pigeonhole nor aws: {line}")
        checked += 1
    assert checked > 40


def test_resource_names_exist() -> None:
    """Every `pigeonhole-...` name in a command is a real resource, alarm or log group of the default prefix."""
    names = ResourceNames()
    known = {getattr(names, f.name) for f in fields(names) if f.name != "prefix"}
    known |= {names.classifier_alias_resource}
    known |= {defs.alarm_name(names.prefix, s) for s in ALL_ALARMS}
    functions = (names.classifier_function, names.drift_function, names.feedback_function, names.golden_hook_function)
    known |= {f"/aws/lambda/{n}" for n in functions}
    used = set()
    for line in _commands():
        for word in shlex.split(line):
            if re.fullmatch(r"(/aws/lambda/)?pigeonhole-[a-z0-9:-]+", word):
                used.add(word)
    unknown = sorted(used - known)
    assert not unknown, f"runbook commands name resources the default stack does not have: {unknown}"
    assert {names.ingest_dlq, names.classifier_function, names.windows_table} <= used
