"""The main window's panels, one module each (Clusters, Pipeline, Runs, Monitor, Data)."""
