# The trainer check shared by training_scripts/ and evaluation_scripts/ -- sourced, not run.
# Needs sss_die from the sourcing _common.sh.

# The python that runs sss-nnunet (the environment it is installed in), else python3.
sss_python() {
    local cli
    cli=$(command -v sss-nnunet 2>/dev/null) && [[ -x $(dirname "$cli")/python ]] && { echo "$(dirname "$cli")/python"; return; }
    echo python3
}

# The trainer class $1 must exist before anything long runs (nnUNetv2_train would only fail after planning).
sss_check_trainer() {
    local py message
    py=$(sss_python)
    "$py" -c "import sss_nnunet" 2>/dev/null ||
        sss_die "cannot check -tr $1: $py cannot import sss_nnunet (activate the environment it is installed in)"
    message=$("$py" -m sss_nnunet.trainer_names "$1" 2>&1) || sss_die "-tr: $message"
}
