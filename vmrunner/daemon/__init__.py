"""The runner as a program: the command line (:mod:`.cli`), ``vmrunner run`` (:mod:`.run`),
building the standard component tree for it and for embedding programs (:mod:`.builder`) and
logging set-up (:mod:`.logs`). The documented exit codes are
:mod:`vmrunner.components.exit_codes` (the components set them)."""
