# nb_glmm vs glmmTMB(family = nbinom2): NB2 counts with a normal random intercept on the log rate.
# - example: the weekly treatment counts of data/example as the model reads them
#   (data/example_weekly.csv: y, log exposure days, centred log run-in rate x, centred week t).
# - Salamanders (glmmTMB): count ~ mined + (1 | site).
# For both, the marginal log-likelihood at the ML estimate is also computed exactly, one
# integrate() per subject / site (tolerance 1e-10), to check crampstats' adaptive
# Gauss-Hermite quadrature; glmmTMB's own logLik is a Laplace approximation.
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])), "common.R"))
suppressPackageStartupMessages(library(glmmTMB))

# log of int prod_j NB(y_j | exp(eta_j + u), k) Normal(u; 0, sigma) du, per group
marginal_loglik <- function(y, eta, group, k, sigma) {
  sapply(split(seq_along(y), group), function(i) {
    h <- function(u) sapply(u, function(v) sum(dnbinom(y[i], size = k, mu = exp(eta[i] + v), log = TRUE))) +
      dnorm(u, 0, sigma, log = TRUE)
    mode <- optimize(h, c(-10 * sigma - 5, 10 * sigma + 5), maximum = TRUE, tol = 1e-12)
    top <- mode$objective
    val <- integrate(function(u) exp(h(u) - top), -Inf, Inf, rel.tol = 1e-10,
                     subdivisions = 1000L)$value
    top + log(val)
  })
}

fit_rows <- function(dataset, fit, y, group) {
  co <- summary(fit)$coefficients$cond
  fixed <- summary(fit$sdr, "fixed")
  sigma <- attr(VarCorr(fit)$cond[[1]], "stddev")[[1]]
  k <- sigma(fit)
  eta <- predict(fit, re.form = NA, type = "link")  # fixed part with the offset
  exact <- marginal_loglik(y, eta, group, k, sigma)
  list(
    ref_rows(dataset, "glmmTMB", arm_terms(rownames(co), "log_rr"), co[, "Estimate"],
             co[, "Std. Error"]),
    # log SD of the random intercept (theta) and log k (betad), with their standard errors
    ref_rows(dataset, "glmmTMB", c("log_sigma", "log_k"),
             c(fixed["theta", "Estimate"], fixed["betad", "Estimate"]),
             c(fixed["theta", "Std. Error"], fixed["betad", "Std. Error"])),
    ref_rows(dataset, "glmmTMB", c("logLik_laplace", "logLik_exact"),
             c(as.numeric(logLik(fit)), sum(exact))),
    cov_rows(dataset, "glmmTMB", arm_terms(rownames(co), "log_rr"), vcov(fit)$cond),
    ref_rows(dataset, "glmmTMB", sprintf("eta[%d]", seq_along(eta)), eta)
  )
}

ex <- read_frame("example_weekly")
ex_fit <- glmmTMB(y ~ arm + x + t + (1 | subject) + offset(log_exposure), data = ex,
                  family = nbinom2)
sal <- Salamanders
sal_fit <- glmmTMB(count ~ mined + (1 | site), data = sal, family = nbinom2)
site <- as.integer(sal$site)
rows <- c(
  fit_rows("example", ex_fit, ex$y, ex$subject),
  fit_rows("salamanders", sal_fit, sal$count, site),
  list(ref_rows("salamanders", "data", sprintf("y[%d]", seq_len(nrow(sal))), sal$count),
       ref_rows("salamanders", "data", sprintf("site[%d]", seq_len(nrow(sal))), site))
)
write_refs(rows, "nb_glmm")
