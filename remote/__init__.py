"""The desktop's link to clusters: SSH, bundle sync, schedulers and event streaming.

Qt-free (checked by import-linter): the GUI and the headless CLI share it.
"""
