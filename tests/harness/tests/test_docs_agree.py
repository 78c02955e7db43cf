"""README.md, docs/*.md and .env.example name only what exists.

Docs drift: a variable is renamed, a verb loses an option, a heading is reworded, a file moves,
and the page that names it still reads well. Each rule below is one test over every doc, failing
with every offender as `file:line: what`; the helpers are in tests/harness/docs.py. A second set
of tests feeds each rule a small doc of its own, so each is shown to fail on what it is for.

1. Variables. A doc presents a name as a setting of this project when it writes it as code
   with one of the project's prefixes (the first word of every .env.example variable, plus
   COMPOSE_, PHOTO_, PYTHON_ and TESTS_): `NAME=value`, `$NAME`, `ENV NAME`, a bare `NAME` or a
   family `NAME_*`; any ALL-CAPS name in a table column headed "setting(s)" or "variable(s)";
   every prefixed name in .env.example's comments. Such a setting must be a variable: a
   `NAME=` or `# NAME=` line of .env.example, or read or set by the product (config/, app/,
   scripts/, nginx/, tools/, Dockerfile, compose*.yaml, stack*.yaml): in Python only as a
   string (`env.integer("UPLOAD_MAX_MB", ...)`), elsewhere as `$NAME`, `${NAME}`, `NAME=` or a
   YAML `NAME:` key. So `MAX_PIXELS = 40_000_000` in a .py file is not a setting. A bare name
   in running prose (not a table, not an assignment) may also be a Python name the product
   assigns (`PHOTO_CHECK_BYTES` in app/cats/photos.py): prose may talk about constants. TESTS_*
   are the harness's, looked up in tests/run and tests/harness/. A family must match at least
   one. Compose's and Docker's own variables and the shell's are allowed by name.
2. `./ops` commands. Every `./ops VERB --flag` in code (and .env.example's comments) names a
   verb of tools/ops/__main__.py's parser, and each flag after it is one of that verb's options.
3. Links and cited sections. A markdown link to a local file points at one that exists, and its
   `#anchor` at a heading there under GitHub's rules (tests/harness/docs.py: `slug`). A citation
   `docs/NAME.md, Heading` or `NAME.md, "Heading"` names a heading of that file (its text,
   case-insensitively, a leading step number aside, or the start of it): a bold run-in lead is
   no heading, nothing can link to it. A quoted part of another file (`config/settings.py`,
   "Background work") must appear in that file.
4. Paths. A path written as code that starts with a top-level folder of the repository (app/,
   config/, docs/, tests/...) exists in the work tree (git's tracked and new unignored files;
   `*`, `<placeholder>` and a trailing / allowed). Inline code may name a path relative to
   tests/ (docs/testing.md says test paths are) or to the doc's own folder. Absolute paths are
   the containers'. Run-time output (tests/artifacts/, .ops/, backups/; all ignored by git) is
   accepted when the code that writes it names the file.
5. Compose files. Every `compose*.yaml` and `stack*.yaml` named anywhere exists.
"""

import argparse
import subprocess

import pytest

from tests.harness import REPO
from tests.harness.docs import (
    Doc,
    Project,
    citation_offenders,
    compose_offenders,
    link_offenders,
    ops_offenders,
    path_offenders,
    slug,
    variable_offenders,
)


@pytest.fixture(scope="module")
def project() -> Project:
    return Project.scan(REPO)


def offenders(rule, project: Project) -> list[str]:
    return [found for doc in project.documents() for found in rule(doc, project)]


def check(title: str, found: list[str]) -> None:
    if found:
        pytest.fail("\n".join([f"{title} ({len(found)}):", *found]), pytrace=False)


def test_every_setting_the_docs_name_is_a_variable(project: Project):
    found = offenders(variable_offenders, project)
    check("names the docs present as variables that do not exist", found)


def test_every_ops_command_in_the_docs_parses(project: Project):
    found = offenders(ops_offenders, project)
    check("./ops commands the parser does not have", found)


def test_every_link_and_cited_section_exists(project: Project):
    found = offenders(link_offenders, project) + offenders(citation_offenders, project)
    check("links and citations to nothing", found)


def test_every_repository_path_in_the_docs_exists(project: Project):
    found = offenders(path_offenders, project)
    check("paths that are not in the work tree", found)


def test_every_compose_file_in_the_docs_exists(project: Project):
    found = offenders(compose_offenders, project)
    check("compose and stack files that do not exist", found)


def test_the_docs_are_read(project: Project):
    """The rules above would pass on docs they cannot read: these have plenty to check."""
    docs = {doc.name: doc for doc in project.documents()}
    names = [*docs]
    assert (names[0], names[-1]) == ("README.md", ".env.example")
    assert "docs/operations.md" in docs
    assert all(doc.code for doc in docs.values())
    assert len(docs["docs/operations.md"].anchors()) > 10


# --- Each rule on a doc of its own --------------------------------------------------------------

FILES = {
    ".gitignore": "/tests/artifacts/\n",
    ".env.example": "# UPLOAD_MAX_MB=10\nDJANGO_DEBUG=false\n",
    "README.md": "# Readme\n",
    "compose.yaml": "services:\n  web:\n    environment:\n      NGINX_PORT: ${NGINX_PORT:-80}\n",
    "config/settings.py": (
        'MAX_PIXELS = 40\nPHOTO_CHECK_BYTES = 1\nTIMEOUT = env.integer("DJANGO_TIMEOUT", 5)\n'
        "# DJANGO_COMMENTED = 1\n"
    ),
    "app/cats/views.py": "",
    "docs/guide.md": "# Guide\n\n## Setup: the first day\n\n### 5. Deploy\n\nThen.\n",
    "tests/unit/test_a.py": "",
    "tests/run": ': "${TESTS_VENV:=.venv}"\n',
    "tests/harness/measurements.py": 'ARTIFACT = "tests/artifacts/measurements.jsonl"\n',
}


def ops_parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="./ops")
    main.add_argument("--project-dir")
    verbs = main.add_subparsers(dest="verb")
    verbs.add_parser("deploy").add_argument("--build", action="store_true")
    verbs.add_parser("backup").add_argument("--with-secrets", action="store_true")
    return main


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Project:
    root = tmp_path_factory.mktemp("repo")
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return Project.scan(root, ops=ops_parser())


def found(rule, sample: Project, text: str, name: str = "docs/new.md") -> list[str]:
    return list(rule(Doc(name, text), sample))


def test_variables_a_doc_invents_python_constants_and_families_are_caught(sample: Project):
    text = """\
| hop | setting(s) |
|---|---|
| photos | `MAX_PIXELS`, `DJANGO_TIMEOUT`, `USER`, `..._TIMEOUT` |
| nginx | `NGINX_*`, `DJANGO_NOPE_*`, `PHOTO_CHECK_*` |

Set `DJANGO_DEBUG=true`. `PHOTO_CHECK_BYTES` and `MAX_PIXELS` are constants; `DJANGO_GONE`
is not, `DJANGO_COMMENTED` neither; `TESTS_VENV` and `TESTS_GONE` are the harness's.

```sh
DJANGO_TYPO=1 python manage.py check
COMPOSE_FILE=compose.yaml:compose.worker.yaml   # Compose's own
echo "$UPLOAD_MAX_MB $PHOTO_CHECK_BYTES"
```
"""
    assert found(variable_offenders, sample, text) == [
        "docs/new.md:3: `MAX_PIXELS` is presented as a setting but is only a Python name, "
        "not read from the environment",
        "docs/new.md:4: `DJANGO_NOPE_*` is presented as a setting but matches no variable of "
        ".env.example or the product",
        "docs/new.md:4: `PHOTO_CHECK_*` is presented as a setting but matches only Python "
        "names, not read from the environment",
        "docs/new.md:6: `DJANGO_GONE` names no variable and no Python name of the product",
        "docs/new.md:7: `DJANGO_COMMENTED` names no variable and no Python name of the product",
        "docs/new.md:7: `TESTS_GONE` names no variable and no Python name of the product",
        "docs/new.md:10: `DJANGO_TYPO=` is presented as a setting but is no variable of "
        ".env.example or the product",
        "docs/new.md:12: `$PHOTO_CHECK_BYTES` is presented as a setting but is only a Python "
        "name, not read from the environment",
    ]


def test_variables_in_env_example_comments(sample: Project):
    text = "# With DJANGO_TIMEOUT or UPLOAD_MAX_MB, never DJANGO_GONE (see DJANGO_*).\nA=1\n"
    assert found(variable_offenders, sample, text, ".env.example") == [
        ".env.example:1: `DJANGO_GONE` is presented as a setting but is no variable of "
        ".env.example or the product",
    ]


def test_ops_verbs_and_options_come_from_the_parser(sample: Project):
    text = """\
`./ops deploy 1.2 --build`, `./ops deploy --fast`, `./ops deplo`, `./ops --help`, `./ops VERB`
and `./ops`.

```sh
sudo ./ops backup --with-secrets   # or ./ops backup --secrets
./ops --project-dir /srv/cats backup
./ops --dir /srv/cats backup
```
"""
    assert found(ops_offenders, sample, text) == [
        "docs/new.md:1: `./ops deploy --fast`: ./ops deploy has no option --fast",
        "docs/new.md:1: `./ops deplo`: no verb 'deplo' (./ops has deploy, backup)",
        "docs/new.md:5: `./ops backup --secrets`: ./ops backup has no option --secrets",
        "docs/new.md:7: `./ops --dir /srv/cats backup`: ./ops has no option --dir",
    ]
    marker = "# ./ops only: compose does not pass this.\n# Set by ./ops deploy --fast.\n"
    assert found(ops_offenders, sample, marker, ".env.example") == [
        ".env.example:2: `./ops deploy --fast.`: ./ops deploy has no option --fast",
    ]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Sizing: processes, memory, connections", "sizing-processes-memory-connections"),
        ("gunicorn's server modes through the stack", "gunicorns-server-modes-through-the-stack"),
        ("TLS: at the load balancer or at nginx", "tls-at-the-load-balancer-or-at-nginx"),
        ("`GUNICORN_MODE` and *threads*", "gunicorn_mode-and-threads"),
        ("[Links](x.md) keep their text", "links-keep-their-text"),
        ("Plain-HTTP trial", "plain-http-trial"),
    ],
)
def test_anchors_follow_githubs_rules(heading: str, anchor: str):
    assert slug(heading) == anchor


def test_links_to_missing_files_and_headings(sample: Project):
    text = """\
# New
## Same
## Same

[ok](guide.md#setup-the-first-day), [second](#same-1), [third](#same-2), [gone](missing.md),
[no heading](guide.md#setup), [`README`](../README.md), [web](https://example.com/a#b),
[folder](../config/), [a
wrapped link](guide.md#deploy-later)

```md
[in a code block](nowhere.md)
```
"""
    assert found(link_offenders, sample, text) == [
        "docs/new.md:5: link to #same-2: docs/new.md has no such heading",
        "docs/new.md:5: link to missing.md: no such file",
        "docs/new.md:6: link to guide.md#setup: docs/guide.md has no such heading",
        "docs/new.md:8: link to guide.md#deploy-later: docs/guide.md has no such heading",
    ]


def test_citations_name_headings_or_text_that_exist(sample: Project):
    text = """\
See (docs/guide.md, Setup), (guide.md, "deploy") and (docs/guide.md,
Teardown); `config/settings.py`, "MAX_PIXELS" and `config/settings.py`, "Nothing here";
(docs/gone.md, Setup).
"""
    assert found(citation_offenders, sample, text) == [
        'docs/new.md:1: cites docs/guide.md, "Teardown": docs/guide.md has no such heading',
        'docs/new.md:2: cites config/settings.py, "Nothing here": config/settings.py has no '
        "such text",
        'docs/new.md:3: cites docs/gone.md, "Setup": no such file',
    ]
    comment = "# Where (docs/guide.md,\n# Setup, also) and (docs/guide.md, Upgrades).\n"
    assert found(citation_offenders, sample, comment, ".env.example") == [
        '.env.example:2: cites docs/guide.md, "Upgrades": docs/guide.md has no such heading',
    ]


def test_paths_that_are_not_in_the_work_tree(sample: Project):
    text = """\
`config/settings.py`, `config/`, `config/*.py`, `app/<name>/views.py`, `config/gone.py`,
`config/settings.py/`, `tests/artifacts/measurements.jsonl`, `tests/artifacts/old.jsonl`,
`unit/test_a.py`, `unit/test_b.py`, `/etc/nginx/tls`, `.venv/bin/python`, `text/html`.

```sh
.venv/bin/python -m pytest tests/unit/test_a.py tests/unit/test_c.py
```
"""
    assert found(path_offenders, sample, text) == [
        "docs/new.md:1: `config/gone.py`: no such file or folder",
        "docs/new.md:2: `config/settings.py/`: no such file or folder",
        "docs/new.md:2: `tests/artifacts/old.jsonl`: a run-time path that nothing in "
        "tests/run, tests/harness/ names",
        "docs/new.md:3: `unit/test_b.py`: no such file or folder in tests/",
        "docs/new.md:6: `tests/unit/test_c.py`: no such file or folder",
    ]
    comment = "# Read by config/settings.py and config/gone.py (docs/guide.md, Setup).\n"
    assert found(path_offenders, sample, comment, ".env.example") == [
        ".env.example:1: `config/gone.py`: no such file or folder",
    ]


def test_compose_files_that_do_not_exist(sample: Project):
    text = """\
compose.yaml and
`compose.gone.yaml`, stack.yaml's, nginx/compose.x.yaml, `compose*.yaml`, `stack*.yaml`
"""
    assert found(compose_offenders, sample, text) == [
        "docs/new.md:2: compose.gone.yaml: no such file",
        "docs/new.md:2: stack.yaml: no such file",
        "docs/new.md:2: stack*.yaml: no such file",
    ]


def test_sample_files_are_what_the_rules_see(sample: Project):
    assert sample.variables >= {"UPLOAD_MAX_MB", "DJANGO_DEBUG", "DJANGO_TIMEOUT", "NGINX_PORT"}
    assert "MAX_PIXELS" not in sample.variables
    assert "DJANGO_COMMENTED" not in sample.variables | sample.python_names
    assert sample.harness_variables == {"TESTS_VENV"}
