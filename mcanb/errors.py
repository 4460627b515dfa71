"""User errors: mistakes a user can fix, printed by the ``mcanb`` command as one message without a traceback.

Every error the package raises for bad input derives from :class:`UserError` (``ParameterError``, ``StudyError``,
``DataError``, ``SplitError``, ``CheckpointError``, ``EncoderNotFound``, ``DamagedOutput``). Its message names
the file, key or field and what was expected. Anything else is a bug or an environment failure and keeps its
traceback. When a notebook cell raises a user error, papermill reports only the class name (``ename``) and the
message (``evalue``); :func:`cell_failure` turns that into the same short message, naming the notebook, the step
(the heading above the cell) and the executed notebook that holds the full traceback. Explained in the README
section "Troubleshooting".
"""
from __future__ import annotations

import json
from pathlib import Path


class UserError(Exception):
    """A mistake in the user's input, parameters or files; the message says what was expected."""


class DamagedOutput(UserError):
    """A file an earlier run or cache wrote cannot be read; the message names it and how to rebuild it."""


# Modules that define user errors (imported on demand, so that papermill's class names can be recognised).
_DEFINED_IN = ("params", "study", "data", "splits", "checkpoint", "encoders")


def user_error_names() -> set[str]:
    """Class names of :class:`UserError` and all its subclasses in the package."""
    import importlib

    for mod in _DEFINED_IN:
        importlib.import_module(f"{__package__}.{mod}")
    names, todo = set(), [UserError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


def yaml_problem(path: str | Path, err: Exception) -> str:
    """``"<path>, line L, column C: <problem>"`` for a YAML syntax error (PyYAML names the file ``<unicode string>``)."""
    mark = getattr(err, "problem_mark", None)
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = " ".join(str(x) for x in (getattr(err, "context", None), getattr(err, "problem", None)) if x)
    return f"{path}{where}: not valid YAML ({problem or str(err).splitlines()[0]})"


def load_yaml(text: str):
    """``yaml.safe_load``, except that a mapping holding the same key twice is a ``yaml.YAMLError`` at the second
    one (PyYAML keeps the last silently); :func:`yaml_problem` turns it into "<file>, line L, column C: ..."."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                _refuse_repeated_keys(self, node)
            return super().construct_mapping(node, deep=deep)

    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def _refuse_repeated_keys(loader, node) -> None:
    from yaml.constructor import ConstructorError

    first: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            seen = first.setdefault(key, key_node.start_mark)
        except TypeError:                              # an unhashable key: PyYAML reports it itself
            continue
        if seen is not key_node.start_mark:
            raise ConstructorError(None, None, f"key {key!r} given twice (first on line {seen.line + 1}); "
                                   "each key may appear once", key_node.start_mark)


def read_yaml_mapping(path: Path, error: type[Exception] = UserError) -> dict:
    """The mapping in the YAML file ``path`` (empty file: ``{}``); bad YAML, a key given twice or another type of
    document is one ``error`` naming the file (and the line and column of a syntax error or repeated key)."""
    import yaml

    try:
        doc = load_yaml(Path(path).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise error(yaml_problem(path, e)) from e
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text (byte {e.start}): save it as UTF-8") from e
    if not isinstance(doc, dict):
        raise error(f"{path}: expected a mapping of parameter names to values, got {type(doc).__name__}")
    return doc


def _step(nb_path: Path, cell_index: int) -> str:
    """The last markdown heading at or above cell ``cell_index`` of the executed notebook, or ``""``."""
    try:
        cells = json.loads(nb_path.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return ""
    for cell in reversed(cells[: cell_index + 1]):
        if cell.get("cell_type") != "markdown":
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        heads = [line.lstrip("#").strip() for line in src.splitlines() if line.startswith("#")]
        if heads:
            return heads[-1]
    return ""


def cell_failure(err, executed: str | Path | None, notebook: str) -> str | None:
    """One short message for a papermill cell error that is a user error; ``None`` for anything else.

    ``err`` is papermill's ``PapermillExecutionError`` (``ename``, ``evalue``, ``cell_index``, ``exec_count``)."""
    if getattr(err, "ename", None) not in user_error_names():
        return None
    lines = [str(err.evalue)]
    where = f"in notebook {notebook}, cell [{err.exec_count}]"
    if executed is not None:
        step = _step(Path(executed), int(err.cell_index))
        where += f" (step: {step})" if step else ""
        lines.append(where)
        lines.append(f"full traceback in the executed notebook {executed} (or rerun with --debug)")
    else:
        lines.append(where)
    return "\n  ".join(lines)
