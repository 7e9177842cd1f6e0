# zinb vs glmmTMB(family = nbinom2, ziformula = ~ 1): zero-inflated NB2 of subject totals.
# crampstats' zinb is a subject-level zero inflation of the negative multinomial of weekly
# counts; without the week trend its likelihood is the zero-inflated NB2 of each subject's
# treatment total (offset: log of the diarised days) times a factor free of the parameters
# compared here (module docstring of crampstats.models.zero_inflated). So this fits the totals
# of data/example as the model reads them (data/example_zinb_totals.csv). The example trial has no
# complete responders (the zero component goes to its boundary), so the zero inflation is
# checked on Salamanders (glmmTMB): count ~ mined + cover, ziformula = ~ 1, each observation a
# one-week "subject" with one day of exposure, mined = yes the control, cover the run-in term.
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])), "common.R"))
suppressPackageStartupMessages(library(glmmTMB))

ex <- read_frame("example_zinb_totals")
fit <- glmmTMB(y ~ arm + x + offset(log_exposure), ziformula = ~1, data = ex, family = nbinom2)
co <- summary(fit)$coefficients
fixed <- summary(fit$sdr, "fixed")
rows <- list(
  ref_rows("example", "glmmTMB", arm_terms(rownames(co$cond), "log_rr"), co$cond[, "Estimate"],
           co$cond[, "Std. Error"]),
  ref_rows("example", "glmmTMB", "logit_pi", co$zi[, "Estimate"], co$zi[, "Std. Error"]),
  ref_rows("example", "glmmTMB", "log_k", fixed["betad", "Estimate"], fixed["betad", "Std. Error"]),
  ref_rows("example", "glmmTMB", "logLik", as.numeric(logLik(fit)))
)
sal <- Salamanders
sal_fit <- glmmTMB(count ~ mined + cover, ziformula = ~1, data = sal, family = nbinom2)
co <- summary(sal_fit)$coefficients
fixed <- summary(sal_fit$sdr, "fixed")
n <- nrow(sal)
rows <- c(rows, list(
  ref_rows("salamanders", "glmmTMB", sub("minedno", "log_rr[no]", rownames(co$cond)),
           co$cond[, "Estimate"], co$cond[, "Std. Error"]),
  ref_rows("salamanders", "glmmTMB", "logit_pi", co$zi[, "Estimate"], co$zi[, "Std. Error"]),
  ref_rows("salamanders", "glmmTMB", "log_k", fixed["betad", "Estimate"],
           fixed["betad", "Std. Error"]),
  ref_rows("salamanders", "glmmTMB", "logLik", as.numeric(logLik(sal_fit))),
  # count coefficients and logit_pi (without the dispersion): the Bayesian check's Gaussian block
  cov_rows("salamanders", "glmmTMB",
           c(sub("minedno", "log_rr[no]", rownames(co$cond)), "logit_pi"),
           vcov(sal_fit, full = TRUE)[1:4, 1:4]),
  ref_rows("salamanders", "data", sprintf("y[%d]", seq_len(n)), sal$count),
  ref_rows("salamanders", "data", sprintf("mined_no[%d]", seq_len(n)), as.numeric(sal$mined == "no")),
  ref_rows("salamanders", "data", sprintf("cover[%d]", seq_len(n)), sal$cover)
))
write_refs(rows, "zinb")
