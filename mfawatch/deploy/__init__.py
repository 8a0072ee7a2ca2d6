"""Deploying a stage: its config, templates and IAM policy (:mod:`.templates`, :mod:`.policy`),
``init`` (:mod:`.init`), the one-command deployer over CloudFormation and Chalice
(:mod:`.deployer`, :mod:`.stacks`) and the post-deploy self-test (:mod:`.selftest`).
"""
