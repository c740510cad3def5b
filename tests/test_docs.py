"""The specification lives in the repository (docs/protocol.md, docs/architecture.md) and stays true.

No Python or Markdown file cites notes kept outside the repository; every `docs/<name>.md` a file cites
exists, and so does every section such a citation names (`docs/protocol.md, "Relevance"` or
`docs/protocol.md ("Relevance")`) and every `#anchor` a Markdown link into docs/ uses; the dependency
rules docs/architecture.md states ("Dependency rules") hold.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = REPO_ROOT / "docs"
SKIPPED_FOLDERS = {".git", ".venv", "venv", "__pycache__", "node_modules", "build", "dist", "gcl-vdb-work",
                   "gcl-vdb-store"}
# Built from pieces, so that this file does not cite them itself.
OUTSIDE_NOTES = re.compile("|".join(re.escape(piece) for piece in (
    "GCL-" + "PROTOCOL", "DESIGN" + ".md", "../" + "shared", "/work/" + "shared",
)))
SECTION_NUMBER = re.compile("\u00a7" + r"\s*\d")  # a section sign and a number: the old outside notes
CITATION = re.compile(r'docs/([\w.-]+\.md)(?:\s*\(\s*|,\s*|\s+)?(?:"([^"\n]+)")?')
DOCS_LINK = re.compile(r"\]\((?:docs/)?([\w.-]+\.md)#([\w-]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
HEAVY_PACKAGES = {"trainer", "exporters"}


def repository_files(*suffixes: str) -> Iterator[Path]:
    """Files of the working tree with these suffixes, outside virtualenvs, caches and generated folders."""
    for folder, subfolders, files in os.walk(REPO_ROOT):
        subfolders[:] = sorted(d for d in subfolders if d not in SKIPPED_FOLDERS and not d.endswith(".egg-info"))
        for name in sorted(files):
            if name.endswith(suffixes):
                yield Path(folder, name)


def headings(markdown: Path) -> list[str]:
    """The heading texts of a Markdown file, outside fenced code blocks."""
    found, fenced = [], False
    for line in markdown.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (match := HEADING.match(line)):
            found.append(match.group(1))
    return found


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_no_file_cites_notes_outside_the_repository() -> None:
    offending = []
    for path in repository_files(".py", ".md"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE_NOTES.search(line) or SECTION_NUMBER.search(line):
                offending.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert not offending, "cite docs/protocol.md or docs/architecture.md (by section title) instead:\n" + \
        "\n".join(offending)


def test_every_cited_document_and_section_exists() -> None:
    cited = 0
    problems = []
    for path in repository_files(".py", ".md"):
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(REPO_ROOT)
        for name, section in CITATION.findall(text):
            cited += 1
            document = DOCS / name
            if not document.is_file():
                problems.append(f"{where} cites docs/{name}, which does not exist")
            elif section and section not in headings(document):
                problems.append(f"{where} cites section {section!r} of docs/{name}, which has no such heading")
        for name, anchor in DOCS_LINK.findall(text):
            document = DOCS / name
            if document.is_file() and anchor not in {github_anchor(h) for h in headings(document)}:
                problems.append(f"{where} links to docs/{name}#{anchor}, which has no such heading")
    assert cited >= 10, "the code should cite the specification; did the citation pattern change?"
    assert not problems, "\n".join(problems)


def test_the_specification_documents_exist_and_are_linked_from_the_readme() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for name in ("protocol.md", "architecture.md"):
        assert (DOCS / name).is_file()
        assert f"docs/{name}" in readme


def _type_checking_only(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, *, in_function: bool = False) -> Iterator[tuple[str, int, bool]]:
    """(top-level package, line, inside a function body) of every import in `tree` that runs (imports under
    `if TYPE_CHECKING:` do not)."""
    for node in ast.iter_child_nodes(tree):
        if _type_checking_only(node):
            yield from (found for child in node.orelse for found in _imports_of(child, in_function))
            continue
        nested = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if isinstance(node, ast.Import):
            yield from ((alias.name.split(".")[0], node.lineno, in_function) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0], node.lineno, in_function
        yield from _imports(node, in_function=nested)


def _imports_of(node: ast.AST, in_function: bool) -> Iterator[tuple[str, int, bool]]:
    """`_imports` of a single statement, the statement itself included."""
    wrapper = ast.Module(body=[node], type_ignores=[])
    return _imports(wrapper, in_function=in_function)


def test_gcl_vectordb_imports_trainer_and_exporters_only_lazily_in_the_cli() -> None:
    offending = []
    package = REPO_ROOT / "gcl_vectordb"
    for path in sorted(package.rglob("*.py")):
        in_cli = path.relative_to(package).parts[0] == "cli"
        for name, line, in_function in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if name in HEAVY_PACKAGES and not (in_cli and in_function):
                offending.append(f"{path.relative_to(REPO_ROOT)}:{line} imports {name}")
    assert not offending, "gcl_vectordb never imports trainer/exporters (the CLI does, inside a command):\n" + \
        "\n".join(offending)
