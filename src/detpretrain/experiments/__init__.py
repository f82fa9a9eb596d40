"""The paper's experiments as chains of runs: which runs each chapter needs, trained once through the run store.

Where each chapter trains:

=====================================  ==============================================================================
chapter (``book/``)                    module and entry point
=====================================  ==============================================================================
``pretraining``, ``detection``         :func:`detpretrain.experiments.detection.run_detection_experiment`
                                       (pre-trainings: :func:`detpretrain.experiments.common.pretrain_configs`)
``ablations`` (Tables 2, 3, 7)         :func:`~detpretrain.experiments.detection.run_detection_experiment` with the
                                       IMAGENET-LOC backbones (:func:`~detpretrain.experiments.common.loc_pretrain_configs`)
                                       and :func:`detpretrain.experiments.classification.run_classification_transfer`
``segmentation`` (Table 4, Fig. 2)     :func:`detpretrain.experiments.segmentation.run_segmentation_experiment`
``classification`` (Tables 5, 6, 8)    :mod:`detpretrain.experiments.features` (frozen features, probes) and
                                       :func:`~detpretrain.experiments.classification.run_classification_transfer`
``feature_space``, ``visualisations``  :mod:`detpretrain.experiments.features` (backbones, cached features)
``eigenspectrum`` (Shinya et al.)      :func:`detpretrain.experiments.eigenspectrum.run_eigenspectrum_study`
``frozen_backbone`` (Vasconcelos)      :func:`detpretrain.experiments.frozen.run_frozen_study`
=====================================  ==============================================================================

:mod:`detpretrain.experiments.common` holds what they share: corpora and targets, the pre-training configs and
:func:`~detpretrain.experiments.common.finetune_chain`, the loop that fine-tunes every backbone once per seed.

Each module also lists its runs without training them: ``plan_detection``, ``plan_segmentation``,
``plan_classification_transfer``, ``plan_features``, ``plan_eigenspectrum``, ``plan_frozen`` return the
:class:`~detpretrain.config.TrainConfig` of every run the matching ``run_*`` function trains (both go through the
module's ``*_chain`` function and :func:`~detpretrain.experiments.common.chain_plan`, so they cannot drift).
:mod:`detpretrain.plan` assembles them into the book's run plan and :mod:`detpretrain.executor` trains it.
"""
