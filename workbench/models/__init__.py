"""workbench.models"""
