"""Sample quality: feature extractors (plugins), reference statistics, and FID / KID / precision-recall.

Layers: `metrics` knows only feature arrays; `extractors` turns uint8 images into features through a
registered feature-extractor plugin; `reference` computes and caches a reference set's statistics;
`evaluate` ties them into the numbers `ddpm-workbench eval` prints.
"""
