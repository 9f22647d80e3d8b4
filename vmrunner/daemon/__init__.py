"""The runner as a program: the command line (:mod:`.cli`), ``vmrunner run`` (:mod:`.run`),
building the standard component tree for it and for embedding programs (:mod:`.builder`),
logging set-up (:mod:`.logs`) and the documented exit codes (:mod:`.exit_codes`).

Imports nothing at package level, so components may use :mod:`.exit_codes` freely.
"""
