"""The models: cycles (:mod:`~gen.model.cycles`) and energy (:mod:`~gen.model.energy`) of
a schedule's traces (:mod:`~gen.model.trace`), one layer phase
(:mod:`~gen.model.estimate`), whole networks (:mod:`~gen.model.network`) and the
training report (:mod:`~gen.model.report`)."""
