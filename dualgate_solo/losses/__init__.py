"""Losses shared by the method families: VICReg with solo-learn's conventions (:mod:`~.vicreg`).

The budget loss L_G of the gated family is :mod:`dualgate_solo.gated.budget`; the slimmable
family's losses are :mod:`dualgate_solo.slimmable.losses`.
"""
