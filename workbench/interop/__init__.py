"""Interop at the edges: diffusers models in (`ddpm-workbench import`), diffusers pipelines out
(`ddpm-workbench export --format diffusers`). Explicit config and key maps; what does not map is refused in
one line; weights never load through code-running pickle. See docs/interop.md."""
