"""What README.md, docs/*.md and .env.example name, read the way a reader reads them, and the
project facts those names are checked against (tests/harness/tests/test_docs_agree.py states
the rules and runs them).

The markdown is read just enough for the rules: fenced code blocks, inline code spans (which
may wrap lines), table cells with their column's header, ATX headings with GitHub's anchors,
links. .env.example is comments and `NAME=` lines.
Every check returns its offenders as `file:line: what`, so one failing test lists them all.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.harness.tracked import tracked_files

# Where the product reads and sets its environment: a variable read or set here is real.
PRODUCT_DIRS = ("app/", "config/", "nginx/", "scripts/", "tools/")
PRODUCT_FILES = ("Dockerfile", "manage.py", "ops", "compose*.yaml", "stack*.yaml")
# The test harness's own settings (TESTS_*, docs/testing.md) are read here, never by the product.
HARNESS = ("tests/run", "tests/harness/")
HARNESS_PREFIX = "TESTS_"
# Prefixes of variables that .env.example does not define but the docs name: Compose's own
# (COMPOSE_FILE), the photo checks' names (so `PHOTO_CHECK_BYTES=...` as a setting is caught),
# the Dockerfile's build argument PYTHON_IMAGE and the harness's TESTS_*. The rest comes from
# .env.example's variable names.
EXTRA_PREFIXES = ("COMPOSE_", "PHOTO_", "PYTHON_", HARNESS_PREFIX)
# Names the project does not define that a doc may still present as settings.
ALLOWED_VARIABLES = frozenset(
    {
        # Docker Compose's and the Docker CLI's own variables.
        "COMPOSE_FILE",
        "COMPOSE_PROJECT_NAME",
        "COMPOSE_PATH_SEPARATOR",
        "COMPOSE_PROFILES",
        "DOCKER_HOST",
        # Well known to every shell and CI system.
        "PATH",
        "HOME",
        "TMPDIR",
        "CI",
    }
)
# In a settings column these are the Dockerfile's instructions (`USER` in nginx/Dockerfile),
# not variables.
DOCKERFILE_INSTRUCTIONS = frozenset(
    {"ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK"}
    | {"LABEL", "RUN", "SHELL", "USER", "VOLUME", "WORKDIR"}
)
# Paths the docs name that exist only once something has run (all in .gitignore). Each is
# accepted when the code that writes it names the file: a renamed output is still caught.
GENERATED = {
    "tests/artifacts/": HARNESS,  # test runs' measurements and logs
    ".ops/": ("tools/ops/",),  # ./ops's state: the release history
}

NAME = r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+"
WORD = r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*"
# `NAME`, `NAME_*`, `*_NAME`, `..._NAME` (a prefix left out): a name, or a family of them.
BARE = re.compile(rf"(?P<lead>\*_|\.\.\._)?(?P<name>{WORD})(?P<tail>_\*)?")
ASSIGNED = re.compile(rf"(?<![\w.$/-])(?P<name>{WORD})=(?!=)")
REFERENCED = re.compile(rf"\$\{{?(?P<name>{WORD})\b")
DECLARED = re.compile(rf"\b(?:ENV|ARG|export)\s+(?P<name>{WORD})\b")
ENV_LINE = re.compile(rf"^#? ?(?P<name>{NAME})=", re.MULTILINE)
ENV_WORD = re.compile(rf"(?<![\w$/.-])(?P<name>{WORD}(?:_\*)?)(?![a-z0-9_])")

PY_STRING = re.compile(r"""(["'])([A-Z][A-Z0-9_]*)\1""")
PY_ASSIGNMENT = re.compile(r"^\s*([A-Z][A-Z0-9_]*)\s*(?::[^=\n]*)?=(?!=)", re.MULTILINE)
SHELL_ASSIGNMENT = re.compile(r"(?<![\w.$-])([A-Z][A-Z0-9_]*)=")
YAML_KEY = re.compile(r"^\s*(?:-\s*)?([A-Z][A-Z0-9_]*)\s*:")

FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*$")
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)((?:(?!\n[ \t]*\n)[\s\S])+?)(?<!`)\1(?!`)")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# `docs/NAME.md, Heading` and `(NAME.md, "Heading")`, also a quoted part of another file
# (`config/settings.py`, "Background work"): how the docs and .env.example cite a section.
CITATION = re.compile(
    r"`?(?P<path>(?:\.{1,2}/)?(?:[\w.-]+/)*\.?[\w-]+(?:\.[\w-]+)+)`?,[ \t]*\n?[ \t]*"
    r"(?:\"(?P<quoted>[^\"]+)\"|(?P<bare>[A-Z][^,;:.()\"`\n]*))"
)
OPS = re.compile(r"(?<![\w./-])\./ops\b(?P<rest>[^#;|&()]*)")
COMPOSE_NAME = re.compile(r"(?<![\w./-])((?:compose|stack)(?:[.*][\w*-]*)*\.ya?ml)\b")
PATH_SPLIT = re.compile(r"[\s=,:;()\"'`\[\]]+")
PLACEHOLDER = re.compile(r"<[^<>/]*>")


@dataclass(frozen=True)
class Span:
    """Code written in a doc: an inline span, a code-block line or an .env.example comment."""

    line: int
    text: str
    kind: str  # "span", "block" or "comment"
    settings_column: bool = False


class Doc:
    """One document: README.md, a docs/*.md page or .env.example."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        self.folder = os.path.dirname(name)
        self.markdown = name.endswith(".md")
        self.code: list[Span] = []
        self.headings: list[str] = []
        if self.markdown:
            self.prose = self._read_markdown()
        else:
            self.prose = self._read_env_file()

    def _read_env_file(self) -> str:
        lines = []
        for number, line in enumerate(self.text.splitlines(), 1):
            if ENV_LINE.match(line):
                lines.append("")  # a variable's line: the definition itself
            elif line.startswith("#"):
                comment = line[1:].removeprefix(" ")
                self.code.append(Span(number, comment, "comment"))
                lines.append(comment)
            else:
                lines.append("")
        return "\n".join(lines)

    def _read_markdown(self) -> str:
        """The prose (code blocks blanked, line numbers kept); collects code and headings."""
        prose, fence = [], None
        for number, line in enumerate(self.text.splitlines(), 1):
            opening = FENCE.match(line)
            if fence is not None:
                if opening and opening[1][0] == fence[0] and len(opening[1]) >= len(fence):
                    fence = None
                else:
                    self.code.append(Span(number, line, "block"))
                prose.append("")
                continue
            if opening:
                fence = opening[1]
                prose.append("")
                continue
            prose.append(line)
            if heading := HEADING.match(line):
                self.headings.append(heading[2])
        text = "\n".join(prose)
        self.code.extend(self._table_spans(prose))
        paragraphs = "\n".join("" if _is_table_row(line) else line for line in prose)
        for match in CODE_SPAN.finditer(paragraphs):
            line = paragraphs.count("\n", 0, match.start()) + 1
            self.code.append(Span(line, _one_line(match[2]), "span"))
        self.code.sort(key=lambda span: span.line)
        return text

    @staticmethod
    def _table_spans(prose: list[str]) -> Iterator[Span]:
        settings: set[int] = set()
        for number, line in enumerate(prose, 1):
            if not _is_table_row(line):
                settings = set()
                continue
            cells = _cells(line)
            following = prose[number] if number < len(prose) else ""
            if TABLE_SEPARATOR.match(following):
                settings = {
                    i for i, cell in enumerate(cells) if re.search(r"setting|variable", cell, re.I)
                }
                continue
            for index, cell in enumerate(cells):
                for match in CODE_SPAN.finditer(cell):
                    yield Span(number, _one_line(match[2]), "span", index in settings)

    def anchors(self) -> set[str]:
        """GitHub's heading anchors: a second heading with the same slug gets -1, a third -2."""
        seen: dict[str, int] = {}
        anchors = set()
        for heading in self.headings:
            base = slug(heading)
            count = seen.get(base, 0)
            anchors.add(base if count == 0 else f"{base}-{count}")
            seen[base] = count + 1
        return anchors

    def has_section(self, title: str) -> bool:
        """A heading whose text is the title or starts with it (a bold run-in lead such as
        `**4. Secrets.**` is not a heading: nothing can link to it)."""
        wanted = " ".join(title.split()).lower()
        for text in self.headings:
            shown = re.sub(r"^\d+\.\s+", "", rendered(text)).lower().rstrip(".:")
            if shown == wanted or shown.startswith(wanted):
                return True
        return False

    def line_of(self, offset: int) -> int:
        return self.text.count("\n", 0, offset) + 1


def _is_table_row(line: str) -> bool:
    return line.lstrip().startswith("|")


def _cells(line: str) -> list[str]:
    """A table row's cells, split on pipes outside code spans."""
    cells, current, ticks = [], [], 0
    for char in line.strip().strip("|"):
        if char == "`":
            ticks ^= 1
        if char == "|" and not ticks:
            cells.append("".join(current))
            current = []
        else:
            current.append(char)
    cells.append("".join(current))
    return cells


def _one_line(text: str) -> str:
    return re.sub(r"\s*\n\s*", " ", text).strip()


def rendered(text: str) -> str:
    """A heading's text as GitHub shows it: links, code and emphasis markup removed."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    return text.replace("`", "").replace("*", "").strip()


def slug(heading: str) -> str:
    """GitHub's anchor: lowercase, punctuation but - and _ removed, each space a dash."""
    return re.sub(r"[^\w\- ]", "", rendered(heading).lower()).replace(" ", "-")


@dataclass(frozen=True)
class Project:
    """The facts the docs are checked against."""

    root: Path
    files: frozenset[str]  # tracked and new unignored files, as git lists them
    dirs: frozenset[str]  # every folder holding one, with a trailing /
    variables: frozenset[str]  # in .env.example, or read or set by the product
    harness_variables: frozenset[str]  # read or set by tests/run and tests/harness/
    python_names: frozenset[str]  # NAME = ... in the product's Python
    prefixes: tuple[str, ...]
    ops: argparse.ArgumentParser | None  # None: the real CLI's, imported when a rule needs it

    @classmethod
    def scan(cls, root: Path, ops: argparse.ArgumentParser | None = None) -> Project:
        # What git lists (tracked, and new files it does not ignore) and is on disk.
        files = frozenset(name for name in tracked_files(root) if (root / name).exists())
        dirs = frozenset(f"{parent}/" for name in files for parent in _parents(name) if parent)
        env_example = (root / ".env.example").read_text() if ".env.example" in files else ""
        declared = {match["name"] for match in ENV_LINE.finditer(env_example)}
        product = [name for name in sorted(files) if _in(name, PRODUCT_DIRS, PRODUCT_FILES)]
        harness = [
            name
            for name in sorted(files)
            if _in(name, HARNESS, ()) and not name.startswith("tests/harness/tests/")
        ]
        read, python = _environment_names(root, product)
        derived = {name.split("_", 1)[0] + "_" for name in declared}
        return cls(
            root=root,
            files=files,
            dirs=dirs,
            variables=frozenset(declared | read),
            harness_variables=frozenset(_environment_names(root, harness)[0]),
            python_names=frozenset(python),
            prefixes=tuple(sorted(derived | set(EXTRA_PREFIXES))),
            ops=ops,
        )

    def documents(self) -> list[Doc]:
        names = sorted(n for n in self.files if fnmatch.fnmatch(n, "docs/*.md"))
        names = ["README.md", *names, ".env.example"]
        return [Doc(name, self.read(name)) for name in names if name in self.files]

    def read(self, name: str) -> str:
        return (self.root / name).read_text(errors="replace")

    def exists(self, path: str) -> bool:
        """A file or folder of the work tree; `*` and a trailing / allowed."""
        if path.endswith("/"):
            candidates: frozenset[str] = self.dirs
        else:
            candidates = self.files | {d.rstrip("/") for d in self.dirs}
        if "*" in path:
            return any(fnmatch.fnmatchcase(name, path) for name in candidates)
        return path in candidates

    def has_prefix(self, name: str) -> bool:
        return name.startswith(self.prefixes)

    def ops_parser(self) -> argparse.ArgumentParser:
        if self.ops is not None:
            return self.ops
        # Imported here, so only the ./ops rule depends on the CLI importing.
        from tools.ops.__main__ import parser  # noqa: PLC0415

        return parser()


def _parents(name: str) -> Iterator[str]:
    parts = name.split("/")[:-1]
    for end in range(1, len(parts) + 1):
        yield "/".join(parts[:end])


def _in(name: str, folders: tuple[str, ...], patterns: tuple[str, ...]) -> bool:
    return (
        name.startswith(folders)
        or name in folders
        or any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
    )


def _is_python(name: str, text: str) -> bool:
    return name.endswith(".py") or bool(re.match(r"#!.*python", text))


def _environment_names(root: Path, names: list[str]) -> tuple[set[str], set[str]]:
    """The variables these files read or set, and the Python names they assign.

    Python reads a variable by its name as a string (`env.integer("UPLOAD_MAX_MB", ...)`,
    `os.environ["GUNICORN_PORT"]`, a key of a subprocess's environment); a bare assignment
    `MAX_PIXELS = ...` is a Python name, not a variable. Shell, Dockerfiles, compose files and
    nginx templates read `$NAME`/`${NAME}` and set `NAME=` or a YAML `NAME:` key; whole-line
    comments do not count.
    """
    variables: set[str] = set()
    python: set[str] = set()
    for name in names:
        try:
            text = (root / name).read_text()
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        if _is_python(name, text):
            variables.update(match[2] for match in PY_STRING.finditer(text))
            python.update(PY_ASSIGNMENT.findall(text))
            continue
        for line in text.splitlines():
            if line.lstrip().startswith("#"):
                continue
            variables.update(REFERENCED.findall(line))
            variables.update(SHELL_ASSIGNMENT.findall(line))
            variables.update(DECLARED.findall(line))
            variables.update(YAML_KEY.findall(line))
    return variables, python


def offender(doc: Doc, line: int, what: str) -> str:
    return f"{doc.name}:{line}: {what}"


# --- Rule 1: environment variables -------------------------------------------------------------


@dataclass(frozen=True)
class Mention:
    line: int
    name: str  # may hold a * for a family
    as_setting: bool  # presented as a setting (table column, NAME=, $NAME, .env.example)
    shown: str  # as the doc writes it


def variable_mentions(doc: Doc, project: Project) -> Iterator[Mention]:
    """The ALL-CAPS names a doc presents as this project's variables or settings."""
    for span in doc.code:
        if span.kind == "comment":
            for match in ENV_WORD.finditer(span.text):
                if "_" in match["name"] and project.has_prefix(match["name"]):
                    yield Mention(span.line, match["name"], True, match["name"])
            continue
        if span.kind == "span" and (bare := BARE.fullmatch(span.text)):
            lead = "*_" if bare["lead"] else ""
            name = f"{lead}{bare['name']}{bare['tail'] or ''}"
            if span.settings_column:
                if name not in DOCKERFILE_INSTRUCTIONS:
                    yield Mention(span.line, name, True, span.text)
            elif "_" in name and (lead or project.has_prefix(name)):
                yield Mention(span.line, name, False, span.text)
            continue
        for pattern in (ASSIGNED, REFERENCED, DECLARED):
            for match in pattern.finditer(span.text):
                name = match["name"]
                if span.settings_column or project.has_prefix(name):
                    yield Mention(span.line, name, True, match[0])


def is_defined(mention: Mention, project: Project) -> bool:
    if mention.name in ALLOWED_VARIABLES:
        return True
    known = (
        project.harness_variables if mention.name.startswith(HARNESS_PREFIX) else project.variables
    )
    if not mention.as_setting:
        # Named in prose, a Python constant or setting of the product's is a real thing too.
        known = known | project.python_names
    if "*" in mention.name:
        return any(fnmatch.fnmatchcase(name, mention.name) for name in known)
    return mention.name in known


def variable_offenders(doc: Doc, project: Project) -> Iterator[str]:
    for mention in variable_mentions(doc, project):
        if is_defined(mention, project):
            continue
        family = "*" in mention.name
        name = f"`{mention.shown}`"
        if not mention.as_setting:
            what = f"{name} names no variable and no Python name of the product"
        elif _python_only(mention, project):
            only = "matches only Python names" if family else "is only a Python name"
            what = f"{name} is presented as a setting but {only}, not read from the environment"
        else:
            none = "matches no variable" if family else "is no variable"
            what = f"{name} is presented as a setting but {none} of .env.example or the product"
        yield offender(doc, mention.line, what)


def _python_only(mention: Mention, project: Project) -> bool:
    return any(fnmatch.fnmatchcase(name, mention.name) for name in project.python_names)


# --- Rule 2: ./ops commands ---------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    # argparse has no public way to walk its subcommands and options.
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> dict[str, bool]:
    """Each option string, and whether it takes a value."""
    return {
        option: action.nargs != 0 for action in parser._actions for option in action.option_strings
    }


def ops_commands(doc: Doc) -> Iterator[tuple[int, str, list[str]]]:
    """Each `./ops ...` written in code (or an .env.example comment), as its words."""
    for span in doc.code:
        for match in OPS.finditer(span.text):
            words = [word.rstrip(",.;") for word in match["rest"].split()]
            first = match["rest"].split()[0] if match["rest"].split() else ""
            if span.kind == "comment" and first.endswith(":"):
                continue  # .env.example's "./ops only:" marks a setting, it is no command
            yield span.line, f"./ops{match['rest'].rstrip()}", [w for w in words if w]


def ops_offenders(doc: Doc, project: Project) -> Iterator[str]:
    ops = project.ops_parser()
    verbs = _subcommands(ops)
    main_options = _options(ops)
    for line, command, words in ops_commands(doc):
        rest = iter(words)
        verb = None
        for word in rest:
            option = word.split("=", 1)[0]
            if not word.startswith("-"):
                verb = word
                break
            if option not in main_options:
                yield offender(doc, line, f"`{command}`: ./ops has no option {option}")
                break
            if main_options[option] and "=" not in word:
                next(rest, None)
        if verb is None or verb.isupper() or verb.startswith("["):
            continue  # `./ops`, `./ops --help`, or a placeholder such as `./ops VERB`
        if verb not in verbs:
            yield offender(
                doc, line, f"`{command}`: no verb {verb!r} (./ops has {', '.join(verbs)})"
            )
            continue
        options = _options(verbs[verb])
        for word in rest:
            option = word.split("=", 1)[0]
            if re.match(r"--?[A-Za-z]", option) and option not in options:
                yield offender(doc, line, f"`{command}`: ./ops {verb} has no option {option}")


# --- Rule 3: links and cited sections ---------------------------------------------------------


def _masked(doc: Doc) -> str:
    """The prose with code spans' contents blanked (a link's text may hold a code span)."""
    return CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", "x", m[0]), doc.prose)


def _resolve(doc: Doc, path: str, project: Project) -> str | None:
    """A repository path for `path` as written in `doc`, if one exists."""
    for base in (doc.folder, ""):
        candidate = os.path.normpath(os.path.join(base, path))
        if not candidate.startswith("..") and project.exists(candidate):
            return candidate
    return None


def link_offenders(doc: Doc, project: Project) -> Iterator[str]:
    if not doc.markdown:
        return
    prose = _masked(doc)
    for match in LINK.finditer(prose):
        target = match[1]
        if SCHEME.match(target):
            continue
        line = prose.count("\n", 0, match.start(1)) + 1
        path, _, anchor = target.partition("#")
        if path:
            candidate = os.path.normpath(os.path.join(doc.folder, path))
            resolved = candidate if project.exists(candidate) else None
        else:
            resolved = doc.name
        if resolved is None:
            yield offender(doc, line, f"link to {target}: no such file")
        elif anchor and resolved.endswith(".md"):
            linked = doc if resolved == doc.name else Doc(resolved, project.read(resolved))
            if anchor not in linked.anchors():
                yield offender(doc, line, f"link to {target}: {resolved} has no such heading")


def citation_offenders(doc: Doc, project: Project) -> Iterator[str]:
    prose = doc.prose
    for match in CITATION.finditer(prose):
        path, quoted, bare = match["path"], match["quoted"], match["bare"]
        if not (path.endswith(".md") or quoted):
            continue  # `file`, Word... is prose; other files are cited with a quoted title
        title = " ".join((quoted or bare).split())
        line = prose.count("\n", 0, match.start()) + 1
        resolved = _resolve(doc, path, project)
        cited = f'{path}, "{title}"'
        if resolved is None:
            yield offender(doc, line, f"cites {cited}: no such file")
        elif resolved.endswith(".md"):
            if not Doc(resolved, project.read(resolved)).has_section(title):
                yield offender(doc, line, f"cites {cited}: {resolved} has no such heading")
        elif title.lower() not in " ".join(project.read(resolved).split()).lower():
            yield offender(doc, line, f"cites {cited}: {resolved} has no such text")


# --- Rule 4: repository paths -------------------------------------------------------------------


def path_mentions(doc: Doc) -> Iterator[tuple[Span, str, str]]:
    """Each word of code that may be a path: (where, as written, with placeholders as *)."""
    for span in doc.code:
        for word in PATH_SPLIT.split(span.text):
            word = word.rstrip(".")  # noqa: PLW2901 (a sentence's full stop in a comment)
            if "/" in word and not word.startswith("/") and word != "/":
                yield span, word, PLACEHOLDER.sub("*", word).removeprefix("./")


def path_offenders(doc: Doc, project: Project) -> Iterator[str]:
    top = {d.split("/", 1)[0] for d in project.dirs}
    # Inline code may name a path relative to tests/ (docs/testing.md: "Paths of tests are
    # relative to `tests/`") or to the doc's own folder (docs/benchmarks/ from benchmarks.md).
    relative = {
        base: {
            d[len(base) + 1 :].split("/", 1)[0] for d in project.dirs if d.startswith(f"{base}/")
        }
        for base in ("tests", doc.folder)
        if base
    }
    for span, written, path in path_mentions(doc):
        first = path.split("/", 1)[0]
        generated = next((root for root in GENERATED if f"{path}/".startswith(root)), None)
        if generated:
            if not _generated(path, generated, project):
                what = f"a run-time path that nothing in {', '.join(GENERATED[generated])} names"
                yield offender(doc, span.line, f"`{written}`: {what}")
        elif first in top:
            if not project.exists(path):
                yield offender(doc, span.line, f"`{written}`: no such file or folder")
        elif span.kind == "span":
            bases = [base for base, names in relative.items() if first in names]
            if bases and not any(project.exists(f"{base}/{path}") for base in bases):
                places = " or ".join(f"{base}/" for base in bases)
                yield offender(doc, span.line, f"`{written}`: no such file or folder in {places}")


def _generated(path: str, root: str, project: Project) -> bool:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    if f"{path.rstrip('/')}/" == root or "*" in name:
        return True
    writers = [f for f in project.files if _in(f, GENERATED[root], ())]
    return any(name in project.read(writer) for writer in writers)


# --- Rule 5: compose and stack files ------------------------------------------------------------


def compose_offenders(doc: Doc, project: Project) -> Iterator[str]:
    for match in COMPOSE_NAME.finditer(doc.text):
        if not project.exists(match[1]):
            yield offender(doc, doc.line_of(match.start()), f"{match[1]}: no such file")
