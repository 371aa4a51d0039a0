"""workbench.export"""
