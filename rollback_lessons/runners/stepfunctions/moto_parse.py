"""moto's Step Functions parses a state machine's definition with ANTLR's pure-Python
runtime when the machine is created (to validate it) and again at each execution: 0.05 to
0.3 CPU s each time for a saga's definition, most of what a short run costs on moto (a
drawn saga, created and run once, was parsed twice). Here the parse tree is kept by the
definition's text, so a definition is parsed once in a process; each execution still builds
its own program from the tree (moto's ``Preprocessor``, which only reads it), as before.
A syntax error is never kept: it is found again, and raised as moto raises it."""

from __future__ import annotations

import functools
from typing import Any

KEPT = 256  # definitions whose trees are kept (a few hundred KB each at most)
_installed = False


def install() -> None:
    """Once per process, on the first moto started in it; a moto whose parser is not where
    5.2 has it is left as it is (slower, the same)."""
    global _installed
    if _installed:
        return
    _installed = True
    try:
        from antlr4 import CommonTokenStream, InputStream
        from moto.stepfunctions.parser.asl.antlr.runtime.ASLLexer import ASLLexer
        from moto.stepfunctions.parser.asl.antlr.runtime.ASLParser import ASLParser
        from moto.stepfunctions.parser.asl.parse import asl_parser
        from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

        moto_parser = asl_parser.AmazonStateLanguageParser
        errors_heard = asl_parser.SyntaxErrorListener
        refused = asl_parser.ASLParserException
    except (ImportError, AttributeError):
        return

    @functools.lru_cache(maxsize=KEPT)
    def tree_of(definition: str) -> Any:
        heard = errors_heard()
        parser = ASLParser(CommonTokenStream(ASLLexer(InputStream(definition))))
        parser.removeErrorListeners()
        parser.addErrorListener(heard)
        tree = parser.state_machine()
        if heard.errors:
            raise refused(errors=heard.errors)  # (an exception is not kept by lru_cache)
        return tree

    def parse(definition: str) -> tuple[Any, Any]:
        tree = tree_of(definition)
        return Preprocessor().visit(tree), tree

    moto_parser.parse = staticmethod(parse)
