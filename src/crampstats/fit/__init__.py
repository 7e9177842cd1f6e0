"""Fit one cramp-frequency model of a trial and store the fit (rule ``fit``)."""

from crampstats.fit.fitting import fit_job, fit_model, fit_path, make_model, model_frame, write_fit

__all__ = ["fit_job", "fit_model", "fit_path", "make_model", "model_frame", "write_fit"]
