"""`contra-bc record`: make recordings.

Headless sources live in ``scripted`` (action files, bots); the interactive
20 Hz window for a human player lives in ``window``. Both write through
``contra_bc.episode.EpisodeRunner`` and the recording writer.
"""
