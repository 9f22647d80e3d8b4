# bash completion for vmrunner; generated from its parser by
# `python -m vmrunner.daemon.commands.docgen`: do not edit.
_vmrunner() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="" cmd="" i
    (( COMP_CWORD > 0 )) && prev="${COMP_WORDS[COMP_CWORD-1]}"
    for (( i = 1; i < COMP_CWORD; i++ )); do
        case "${COMP_WORDS[i]}" in
            run|check|render|status|probe|events|console|shutdown|reset|list|qmp|pause|resume|resize-disk|fsfreeze|fsthaw|screenshot|completion|man) cmd="${COMP_WORDS[i]}"; break ;;
        esac
    done
    case "$prev" in
        --config|--dir|--kubeconfig|--output|-c|-o)
            COMPREPLY=( $(compgen -f -- "$cur") ); return ;;
        --log-format)
            COMPREPLY=( $(compgen -W 'text json' -- "$cur") ); return ;;
        --log-level)
            COMPREPLY=( $(compgen -W 'DEBUG INFO WARNING ERROR CRITICAL' -- "$cur") ); return ;;
        --detach-key|--kube-context|--kube-namespace|--kube-vm-name|--since|--tail|--timeout) return ;;
    esac
    local words=""
    case "$cmd" in
        '') words='-h --help --version --log-level --log-format -c --config --strict'
            [[ "$cur" != -* ]] && words="run check render status probe events console shutdown reset list qmp pause resume resize-disk fsfreeze fsthaw screenshot completion man" ;;
        run) words='-h --help --log-level --log-format -c --config --strict --kubeconfig --kube-context --kube-namespace --kube-vm-name --no-kube' ;;
        check) words='-h --help --log-level --log-format -c --config --strict --no-host-files --host --json' ;;
        render) words='-h --help --log-level --log-format -c --config --strict' ;;
        status) words='-h --help --log-level --log-format -c --config --strict --json --refresh' ;;
        probe) words='-h --help --log-level --log-format -c --config --strict live ready' ;;
        events) words='-h --help --log-level --log-format -c --config --strict --json --since' ;;
        console) words='-h --help --log-level --log-format -c --config --strict --detach-key --no-replay --tail' ;;
        shutdown) words='-h --help --log-level --log-format -c --config --strict --wait --timeout' ;;
        reset) words='-h --help --log-level --log-format -c --config --strict' ;;
        list) words='-h --help --log-level --log-format -c --config --strict --dir --json' ;;
        qmp) words='-h --help --log-level --log-format -c --config --strict' ;;
        pause) words='-h --help --log-level --log-format -c --config --strict' ;;
        resume) words='-h --help --log-level --log-format -c --config --strict' ;;
        resize-disk) words='-h --help --log-level --log-format -c --config --strict' ;;
        fsfreeze) words='-h --help --log-level --log-format -c --config --strict --timeout' ;;
        fsthaw) words='-h --help --log-level --log-format -c --config --strict' ;;
        screenshot) words='-h --help --log-level --log-format -c --config --strict -o --output' ;;
        completion) words='-h --help bash' ;;
        man) words='-h --help' ;;
    esac
    COMPREPLY=( $(compgen -W "$words" -- "$cur") )
}
complete -F _vmrunner vmrunner
