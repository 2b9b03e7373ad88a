"""The screens of the terminal UI: triage, finding, evidence browser, lists and dialogs."""
