"""Auto-calibration: find where the model breaks as averaging is cut, and choose the fastest safe setting.

    control = device_control(core, "Detector.LineAverage")            # choose
    fields = [acquire_repeats(core, 64, control)]                      # repeats (or load_repeats)
    profile = calibrate(engine, "backbone-small", fields, control, 16.0, Tolerance(), 1.0, frame_ms)  # run
    save_calibration(Path("calibration/NAME"), profile)                # run
    apply_profile(core, "calibration/NAME/profile.json")               # profile, before acquiring

Front ends and scripts call ``livedenoise.app.calibrate_on_core`` or ``calibrate_from_stack``, which do
the steps above and report through ``livedenoise.events.Events``.

Method: the README's Calibration section. Modules: ``repeats`` (recording), ``analysis`` (the ladder against an independent
reference), ``residual`` (hallucination check), ``criteria`` (what "good enough" means: one module
per criterion, registered by name), ``breaking`` (the breaking point), ``choose`` (the
device's values), ``profile`` (the saved result), ``report`` (plot and markdown), ``run`` (all of it).
Image quality is scored with ``livedenoise.metrics``, which training shares.
"""
