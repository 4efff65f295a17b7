"""`contra-bc annotate`: timestamped task instructions for recordings.

Gemini watches compressed clips of a recording and writes short, landmark-based
objectives with start/end times (prompt: contra_bc/prompts/annotate-v1.md), or a
hand-written `| Start | End | Text |` table is imported. Both end as an
annotations file (contra_bc/formats/annotations.py).
"""

from contra_bc.annotate.run import Settings, annotate, import_table, table_rows

__all__ = ["Settings", "annotate", "import_table", "table_rows"]
