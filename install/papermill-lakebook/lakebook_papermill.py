"""papermill support for Lakebook notebooks.

`papermill in.ipynb out.ipynb -p day 2026-01-02` injects, after the cell tagged `parameters`:

    # Parameters
    %set day 2026-01-02

and the notebook uses the value as `${day}` in magic lines and SQL. Values are shell-quoted, as
`%set` splits its line like a shell; lists and dicts are passed as JSON text.
"""

from __future__ import annotations

import json
import re
import shlex

from papermill.engines import NBClientEngine
from papermill.models import Parameter
from papermill.translators import Translator, papermill_translators

KERNEL_NAME = "lakebook"
SET_LINE = re.compile(r"^\s*%set\s+([A-Za-z_][A-Za-z0-9_]*)(?:\s+(.*))?$")


class LakebookTranslator(Translator):
    @classmethod
    def translate_str(cls, val):
        return shlex.quote(val)

    @classmethod
    def translate_none(cls, val):
        return "''"

    @classmethod
    def translate_dict(cls, val):
        return shlex.quote(json.dumps(val))

    @classmethod
    def translate_list(cls, val):
        return shlex.quote(json.dumps(val))

    @classmethod
    def comment(cls, cmt_str):
        return f"# {cmt_str}".strip()

    @classmethod
    def assign(cls, name, str_val):
        return f"%set {name} {str_val}"

    @classmethod
    def inspect(cls, parameters_cell):
        """The `%set NAME VALUE` lines of a parameters cell (`papermill --help-notebook`)."""
        found = []
        for line in parameters_cell.source.splitlines():
            m = SET_LINE.match(line)
            if m:
                value = " ".join(shlex.split(m.group(2) or ""))
                found.append(Parameter(name=m.group(1), inferred_type_name="str", default=repr(value), help=""))
        return found


class LakebookEngine(NBClientEngine):
    """papermill's default engine, under a name papermill loads (and so this module)."""


papermill_translators.register(KERNEL_NAME, LakebookTranslator)
