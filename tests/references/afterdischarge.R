# afterdischarge vs ordinal::clm (cumulative logit, P(Y <= j) = expit(theta_j - x'beta)).
# - example: end-of-treatment after-discharge grades 0-4 of data/example with the centred
#   baseline grade x, as the model reads them (data/example_grades.csv); estimates, standard
#   errors and the full covariance (the Bayesian check combines it with the model's priors).
# - wine (ordinal): rating 1-5 ~ temp + contact. The model's terms (arms and one baseline)
#   cannot express two crossed factors without a baseline, so crampstats' ordinal
#   log-likelihood is evaluated at this ML estimate (rating r as grade r - 1).
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])), "common.R"))
suppressPackageStartupMessages(library(ordinal))

ex <- read_frame("example_grades")
ex$grade <- factor(ex$grade, levels = 0:4, ordered = TRUE)
fit <- clm(grade ~ arm + x, data = ex, link = "logit")
co <- coef(summary(fit))
terms <- arm_terms(rownames(co), "beta")
terms <- ifelse(grepl("\\|", terms), paste0("cutpoint[", terms, "]"), terms)
rows <- list(
  ref_rows("example", "clm", terms, co[, "Estimate"], co[, "Std. Error"]),
  ref_rows("example", "clm", "logLik", as.numeric(logLik(fit))),
  cov_rows("example", "clm", terms, vcov(fit))
)

wine_fit <- clm(rating ~ temp + contact, data = wine, link = "logit")
co <- coef(summary(wine_fit))
eta <- model.matrix(~ temp + contact, data = wine)[, -1] %*% coef(wine_fit)[c("tempwarm", "contactyes")]
rows <- c(rows, list(
  ref_rows("wine", "clm", rownames(co), co[, "Estimate"], co[, "Std. Error"]),
  ref_rows("wine", "clm", "logLik", as.numeric(logLik(wine_fit))),
  ref_rows("wine", "data", sprintf("grade[%d]", seq_len(nrow(wine))), as.integer(wine$rating) - 1),
  ref_rows("wine", "clm", sprintf("eta[%d]", seq_len(nrow(wine))), eta[, 1])
))
write_refs(rows, "afterdischarge")
