"""The certification family: randomized smoothing (Cohen, Rosenfeld & Kolter, ICML 2019) through ART's
`art.estimators.certification.randomized_smoothing`. Its table (`table`: `VARIANTS`, every smoothed classifier ART
trains a row; `CertifyConfig`, a certification's options, checked) is pure data, read by the option checks without
torch or ART; the smoothed classifier with its batched certification (`smoothing`), training under noise through
ART's classes (`training`), the attack on it that gives the empirical bound beside the certified one (`empirical`) and
the certified-accuracy curves (`curves`) use ART.

Layer 3, beside attacks and defences: imports models, `toolbox`, the foundation and `skinart.attacks` (its frozen
weights and one-hot labels); never runs or anything above. This file imports nothing."""
