"""`contra-bc record`: make recordings.

Headless sources live in ``scripted`` (action files, bots); the human side is
``window`` (GameWindow: frames out, buttons and controls in; reused by `play`)
and ``session`` (the 20 Hz tick loop, episodes of a session folder, the panel).
All of them write through ``contra_bc.episode.EpisodeRunner`` and the recording writer.
"""
