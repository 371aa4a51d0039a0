"""The built-in plugins of ddpm-workbench (installed as the import package `workbench_plugins`).

Each module registers through the same hooks a third-party plugin uses (workbench.plugin_host.hookspecs).
"""
