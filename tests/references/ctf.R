# ctf vs survival::survreg (log-normal, interval-censored: Surv(type = "interval2")).
# - example: end-of-treatment CTF bounds of data/example with the centred log baseline CTF x,
#   as the model reads them (data/example_ctf.csv; lower 0 = below the first step,
#   upper Inf = right-censored at the protocol maximum).
# - lung (survival): survival time in 30-day steps, as the CTF protocol records a threshold in
#   2 Hz steps: a death in (30 (s - 1), 30 s] days, a censored time t as (t, Inf); arm = sex
#   (male the control), the log age the baseline term.
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])), "common.R"))
suppressPackageStartupMessages(library(survival))

interval_surv <- function(lower, upper) {
  Surv(ifelse(lower > 0, lower, NA), ifelse(is.finite(upper), upper, NA), type = "interval2")
}
fit_rows <- function(dataset, fit) {
  co <- summary(fit)$table
  terms <- sub("^sex", "log_ratio[", arm_terms(rownames(co), "log_ratio"))
  terms[terms == "log_ratio[female"] <- "log_ratio[female]"
  terms[terms == "Log(scale)"] <- "log_sigma"
  list(ref_rows(dataset, "survreg", terms, co[, "Value"], co[, "Std. Error"]),
       cov_rows(dataset, "survreg", terms, vcov(fit)),
       ref_rows(dataset, "survreg", "logLik", as.numeric(logLik(fit))))
}

ex <- read_frame("example_ctf")
ex_fit <- survreg(interval_surv(ex$lower, ex$upper) ~ arm + x, data = ex, dist = "lognormal")

lung_data <- na.omit(lung[, c("time", "status", "sex", "age")])
step <- 30
dead <- lung_data$status == 2
lung_data$lower <- ifelse(dead, step * (ceiling(lung_data$time / step) - 1), lung_data$time)
lung_data$upper <- ifelse(dead, step * ceiling(lung_data$time / step), Inf)
lung_data$sex <- factor(ifelse(lung_data$sex == 1, "male", "female"), levels = c("male", "female"))
lung_data$x <- log(lung_data$age) - mean(log(lung_data$age))
lung_fit <- survreg(interval_surv(lung_data$lower, lung_data$upper) ~ sex + x, data = lung_data,
                    dist = "lognormal")
n <- nrow(lung_data)
rows <- c(
  fit_rows("example", ex_fit),
  fit_rows("lung", lung_fit),
  list(ref_rows("lung", "data", sprintf("lower[%d]", seq_len(n)), lung_data$lower),
       ref_rows("lung", "data", sprintf("upper[%d]", seq_len(n)), lung_data$upper),
       ref_rows("lung", "data", sprintf("female[%d]", seq_len(n)), as.numeric(lung_data$sex == "female")),
       ref_rows("lung", "data", sprintf("age[%d]", seq_len(n)), lung_data$age))
)
write_refs(rows, "ctf")
