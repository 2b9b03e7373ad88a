"""The Textual terminal UI of Mesh Doctor.

`doctor.tui.app.build_app` builds the app for the CLI and for the tests. The
scan, the export and file reads run in workers that post the messages of
`doctor.tui.messages`. Screens only compose widgets, bind keys, start workers
and render results.
"""
