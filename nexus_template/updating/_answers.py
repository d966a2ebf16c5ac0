"""The answers of an update: checked before it, taken as asked, and compared after it.

Copier lets answers change without a word: an answer whose question a release renamed (and whose
migration a later release removed) is dropped, an answer its rules no longer accept becomes the default,
a hand edit of the answers file is coerced (`gpu: maybe` is true) or, when it validates, taken as if the
files had been rendered with it (so the release's merge never brings it), and a `--data` name the
template does not ask is ignored. Here the answers read from the file are validated by the template's own
questions, a hand edit is passed as data over the answers the template last wrote, an unknown `--data`
name is refused, and every change after the update that nobody asked for is named.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from copier import _main
from copier._user_data import AnswersMap, Question  # private module: the class copier validates with

from nexus_template.updating._git import git, repository_prefix

__all__ = [
    "ANSWERS_FILE",
    "AUTO",
    "Answers",
    "answer_changes",
    "captured_migrated_answers",
    "explicit_derived_notes",
    "read_answers",
    "template_written_answers",
]

ANSWERS_FILE = ".copier-answers.yml"
# A derived answer recorded as "auto" follows its sources (extensions/context.py resolves it).
AUTO = "auto"
# derived answer -> the answers it is derived from
DERIVED = {
    "base_image": ("gpu", "python_version"),
    "cpu_limit": ("gpu",),
    "memory_limit": ("gpu",),
}
# What copier records besides the answers: the template and its version.
_TEMPLATE_KEYS = ("_commit", "_src_path")
# The Python types a value read from YAML must already have for a question of each type: copier would
# cast anything else (bool("maybe") is true), which is how a typo became an answer.
_NATIVE_TYPES: dict[str, tuple[type, ...]] = {
    "bool": (bool,),
    "int": (int,),
    "float": (int, float),
    "str": (str,),
}
# The versions of the answers file read back when looking for the one the template wrote: a longer run
# of hand edits at one template version is taken from its last of these.
_HISTORY_DEPTH = 100


def read_answers(content: bytes | str | None) -> dict[str, Any]:
    data = yaml.safe_load(content or "") or {}
    return data if isinstance(data, dict) else {}


def answer_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """name -> [before, after] for each answer the update changed (the template version excluded)."""
    names = (before.keys() | after.keys()) - set(_TEMPLATE_KEYS)
    return {
        name: [before.get(name), after.get(name)]
        for name in sorted(names)
        if before.get(name) != after.get(name)
    }


def explicit_derived_notes(changes: dict[str, list[Any]], after: dict[str, Any]) -> list[str]:
    """A sentence for each derived answer set explicitly while one of its sources changed."""
    notes = []
    for derived, sources in DERIVED.items():
        moved = [source for source in sources if source in changes]
        if not moved or derived not in after or after[derived] == AUTO or derived in changes:
            continue
        what = ", ".join(f"{source} {changes[source][0]} → {changes[source][1]}" for source in moved)
        notes.append(
            f"{derived} is set explicitly to {after[derived]!r} and was kept although {what}: check it "
            f"still fits, or follow the default with --data {derived}={AUTO}"
        )
    return notes


def template_written_answers(service: Path, recorded: dict[str, Any]) -> dict[str, Any]:
    """The service's answers file as the template last wrote it, from the service's git history.

    That is the oldest of the newest committed versions that all record the current template version
    (`_commit`): a later one at the same version was edited by hand (or by an update with --data, which
    is then taken again as a hand edit, harmlessly: its files already hold the value)."""
    prefix = repository_prefix(service)
    log = git(service, "log", f"-n{_HISTORY_DEPTH}", "--format=%H", "--", ANSWERS_FILE, check=False)
    written = recorded
    for commit in log.stdout.split():
        shown = git(service, "show", f"{commit}:{prefix}{ANSWERS_FILE}", check=False)
        version = read_answers(shown.stdout) if shown.returncode == 0 else {}
        if version.get("_commit") != recorded.get("_commit"):
            break
        written = version
    return written


@contextmanager
def captured_migrated_answers(copy: Path) -> Iterator[dict[str, Any]]:
    """Within the block, the dict yielded holds the copy's answers as copier's update renders the new
    version with them: after the release's "before" migrations, before copier drops or resets any.

    Copier reads them back from the file once the migrations ran; the render into the copy itself is the
    one run_copy whose destination is the copy (the old and new versions render into temporary folders).
    Until that render starts it holds the file as it was, so a copier that no longer works this way
    makes every change look unasked (reported), never the other way round."""
    answers_file = copy / ANSWERS_FILE
    captured = read_answers(answers_file.read_bytes())
    original = _main.Worker.run_copy

    def run_copy(self: _main.Worker) -> None:
        if Path(self.dst_path).resolve() == copy.resolve():
            captured.clear()
            captured.update(read_answers(answers_file.read_bytes()))
        original(self)

    _main.Worker.run_copy = run_copy  # type: ignore[method-assign]  # wrapped for the block, then put back
    try:
        yield captured
    finally:
        _main.Worker.run_copy = original  # type: ignore[method-assign]  # the method copier defines


@dataclass
class Answers:
    """The answers of one service's update: as committed, as the template last wrote them, and `--data`."""

    recorded: dict[str, Any]
    written: dict[str, Any]
    data: dict[str, str]

    @property
    def hand_edits(self) -> dict[str, Any]:
        """Answers the file holds with a value the template did not write (a name removed by hand is left
        to copier, which gives it its default in both renders, as before)."""
        return {
            name: value
            for name, value in self.recorded.items()
            if name not in _TEMPLATE_KEYS and self.written.get(name) != value
        }

    @property
    def asked(self) -> dict[str, Any]:
        """The changes asked for, passed to copier as data: hand edits, and --data over them."""
        return {**self.hand_edits, **self.data}

    def for_the_copy(self) -> dict[str, Any]:
        """The answers file the update starts from: the template's values, so that both of copier's renders
        of the old version match the service's files and a hand edit comes in as a change; the template
        and version as recorded (a `_src_path` edited by hand is the template's new address)."""
        return {
            name: value if name in _TEMPLATE_KEYS else self.written[name]
            for name, value in self.recorded.items()
            if name in _TEMPLATE_KEYS or name in self.written
        }

    def put_in(self, copy: Path) -> None:
        """Write `for_the_copy` as the copy's answers file (copier reads nothing else from it)."""
        (copy / ANSWERS_FILE).write_text(
            yaml.safe_dump(self.for_the_copy(), sort_keys=False, allow_unicode=True)
        )

    def problem(self, target: str | None) -> str | None:
        """Why the update must not start, in one line: a `--data` name the target version does not ask, or
        a hand edit that the questions of the file's template version do not accept; None when all fit.

        Only hand edits are checked: the rest of the file is as that version's copier wrote it."""
        source = str(self.recorded.get("_src_path", ""))
        if self.data:
            with _main.Worker(src_path=source, vcs_ref=target, unsafe=True, quiet=True) as worker:
                questions = worker.template.questions_data
                release = str(target or worker.template.version or "the template")
                for name, raw in self.data.items():
                    if name not in questions:
                        valid = ", ".join(sorted(questions))
                        return f"--data {name}: {release} asks no such question; valid names: {valid}"
                    # without copier's casts: `gpu=nein` is no boolean (copier takes it for true)
                    if error := _rule_broken(worker, name, questions[name], raw, from_command_line=True):
                        return f"--data {name}={raw}: {error}"
        edits = {name: value for name, value in self.hand_edits.items() if name not in self.data}
        if not edits:
            return None
        version = str(self.recorded.get("_commit", ""))
        with _main.Worker(src_path=source, vcs_ref=version, unsafe=True, quiet=True) as worker:
            questions = worker.template.questions_data
            for name, value in edits.items():
                if name not in questions:
                    return f"answer {name} in {ANSWERS_FILE}: {version} asks no such question: remove it and commit"
                if error := _rule_broken(worker, name, questions[name], value):
                    return (
                        f"answer {name} in {ANSWERS_FILE}: {error}: fix it and commit, or give "
                        f"--data {name}=VALUE"
                    )
        return None

    def unasked_notes(self, migrated: dict[str, Any], after: dict[str, Any]) -> list[str]:
        """A sentence for each answer the update changed without being asked, and for each one asked for that
        it did not take. `migrated`: the answers after the release's migrations (their changes are the
        template's own, tested ones: reported in the answers, not for review); `after`: copier's answers."""
        release = str(after["_commit"])
        notes = []
        for name, value in self.asked.items():
            if name not in after:
                what = (
                    f"--data {name}={value}"
                    if name in self.data
                    else f"answer {name}: {value!r} (edited by hand)"
                )
                notes.append(
                    f"{what} was not applied: {release} does not ask {name} with these answers (a question "
                    "asked only under a condition: check copier.yml's `when`)"
                )
        unasked = sorted(migrated.keys() - self.asked.keys() - set(_TEMPLATE_KEYS))
        for name in unasked:
            if name in after and after[name] != migrated[name]:
                notes.append(
                    f"answer {name}: {migrated[name]!r} → {after[name]!r} was changed by {release} without a "
                    "migration or --data (copier gives an answer its rules no longer accept the default): "
                    f"check it, or set it with --data {name}=VALUE"
                )
        # an answer copier left out: a question asked only under a condition (service facts, gpu_count), or
        # one the release no longer has
        if left_out := [name for name in unasked if name not in after]:
            questions = _questions(after)
            new_questions = sorted(after.keys() - migrated.keys() - set(_TEMPLATE_KEYS))
            # a new question given a value on purpose is the person's answer to what was dropped
            replaced = any(question in self.asked for question in new_questions)
            for name in left_out:
                if name not in questions and not replaced:
                    notes.append(
                        _dropped(
                            name,
                            migrated[name],
                            release,
                            {question: after[question] for question in new_questions},
                        )
                    )
                elif name in questions and not self.asked and not _asked_only_at_copy(questions[name]):
                    notes.append(
                        f"answer {name}: {migrated[name]!r} is no longer recorded: {release} asks {name} only "
                        "under a condition these answers do not meet (copier.yml's `when`), so what depended "
                        "on it went too (see the removed files); if that is not wanted, tell the template's "
                        "maintainers"
                    )
        return notes


def _questions(answers: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The questions of the template version `answers` record (name -> copier.yml's settings)."""
    with _main.Worker(
        src_path=str(answers["_src_path"]), vcs_ref=str(answers["_commit"]), unsafe=True, quiet=True
    ) as worker:
        return dict(worker.template.questions_data)


def _asked_only_at_copy(question: dict[str, Any]) -> bool:
    """A question the template asks only when a service is created (`when` on copier's operation, as the
    service facts that release/service.env holds afterwards): the template drops its answer on purpose."""
    return "_copier_operation" in str(question.get("when", ""))


def _dropped(name: str, value: Any, release: str, new_questions: dict[str, Any]) -> str:
    """The note for an answer copier dropped because its question is gone (renamed without a migration?)."""
    note = f"answer {name}: {value!r} was dropped: {release} has no such question and no migration carried it"
    if new_questions:
        took = ", ".join(f"{question}: {default!r}" for question, default in new_questions.items())
        tries = " or ".join(f"--data {question}={_as_data(value)}" for question in new_questions)
        note += f" (new questions that took their defaults: {took}); if one of them replaces it, give it the value ({tries})"
    else:
        note += "; the release notes should say what replaced it"
    return note + ", and tell the template's maintainers that a migration is missing"


def _as_data(value: Any) -> str:
    """A value as `--data NAME=VALUE` takes it (YAML: true, 9000, [a, b])."""
    return value if isinstance(value, str) else json.dumps(value)


def _rule_broken(
    worker: _main.Worker, name: str, details: dict[str, Any], value: Any, *, from_command_line: bool = False
) -> str:
    """Why copier's question `name` does not accept `value` ("" if it does): the question's type (without
    copier's casts), choices and validator (extensions/rules.py). A value read from the answers file has
    its YAML type already; one `from_command_line` (`--data`) is a string, read as YAML for a question of
    a scalar type other than str (true, 9000)."""
    question = Question(
        answers=AnswersMap(),
        context={},
        jinja_env=worker.jinja_env,
        settings=worker.settings,
        var_name=name,
        **details,
    )
    kind = question.get_type_name()
    if from_command_line and kind in _NATIVE_TYPES and kind != "str":
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as error:
            return f"{value!r} is no {kind}: {error}"
    native = _NATIVE_TYPES.get(kind)
    if native and (not isinstance(value, native) or (isinstance(value, bool) and kind != "bool")):
        return f"{value!r} is a {type(value).__name__}, not a {kind}"
    try:
        question.validate_answer(question.parse_answer(value))
    except (ValueError, TypeError) as error:
        return str(error)
    return ""
