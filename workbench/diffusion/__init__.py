"""workbench.diffusion"""
