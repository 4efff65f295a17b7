"""The Pixels2Play-style policy model (see model.py), its action schema, text encoders and the Policy API."""
