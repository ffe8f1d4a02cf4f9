"""Stage one of ANAUS: dataset registry and readers, the ultrasound phantom, LP-SAM and the mask store.

Importing ``maskgen`` is light: nothing here imports torch or segment_anything. The LP-SAM
model lives in ``maskgen.lpsam`` and is imported only by the commands that need it, so that
stage two (``pretrain``) can read the store through ``maskgen.store`` without loading SAM.
"""

__version__ = "0.1.0"
