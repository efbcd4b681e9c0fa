"""The emsh procedure language (SPIDER's, with better errors).

Modules, in the order text flows through them:

* ``grammar.lark`` and :mod:`~emsh.lang.parser`: statement lines -> :mod:`~emsh.lang.ast`
  nodes, errors as ``file:line:col`` with a caret;
* :mod:`~emsh.lang.blocks`: ``DO``/``ENDDO``, ``IF``/``ENDIF`` and labels of a procedure;
* :mod:`~emsh.lang.expressions`: register arithmetic (and image formulas);
* :mod:`~emsh.lang.templates`: string variables and file-name templates in answers;
* :mod:`~emsh.lang.answers`: where an operation's answers come from and how they are read;
* :mod:`~emsh.lang.interpreter`: runs procedures (used through :class:`emsh.session.Session`);
* :mod:`~emsh.lang.checker`: ``emsh check``, the same walk without running anything.
"""
