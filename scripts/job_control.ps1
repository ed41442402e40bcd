# salve-script: job_control
# Start a detached step as a scheduled task, or remove a finished one (contract:
# JobControlRequest / JobControlAnswer).
#
# With wait_ms, the start then waits here for the task to end, looking at its state (first
# after 25 ms, then twice as long each time, at most every 250 ms) until it has finished or
# wait_ms has passed: a short step (a read) is then answered in this one call with its output
# and exit code, as job_poll would answer from offset 0, and with remove_finished its task and
# folder are removed once the answer holds the whole output. The wait only watches: a task
# still running when it ends goes on and is polled with job_poll.
#
# The task runs powershell.exe on run.ps1 in the job's folder, as a process of its own outside
# any WinRM shell: no WS-Man Signal, shell quota (MaxMemoryPerShellMB), idle timeout or dropped
# connection reaches it, and it has no execution time limit. run.ps1 runs script.ps1 (the
# rendered step: prelude, $SalveArgs, body) and appends every output line to output.log as
# UTF-8 as it is written; the task's last result is the script's exit code. With become_user
# the task logs on with that account's password (a logon with network credentials: shares and
# Active Directory are reachable, unlike in a WinRM network logon); without, it runs as SYSTEM.
# A running task is never stopped or removed by this script. The task runs at priority 4, as an
# interactive process would: Task Scheduler's default, 7, starts it below normal CPU priority
# with very low I/O and low memory priority (TaskSettings.Priority), which would stretch an
# hour of Setup inside the maintenance window.
# The step's secrets (share_credential: a package source's own share account; download_token:
# the token for a package salve serves) are left for it in files of the job's folder
# (share.cred, download.token): never on a command line or in a log. Each is encrypted with
# DPAPI in the machine's scope (useless on another machine), created with an ACL admitting only
# SYSTEM, Administrators and the task's account before anything is written to it, and deleted
# by the step as soon as it has read it.

$taskPath = '\salve\'
$job = [string] $SalveArgs.job
if ($job -notmatch '^salve-[A-Za-z0-9_.-]+$') { throw "job_control: invalid job id '$job'" }
$dir = Join-Path (Join-Path $env:ProgramData 'salve\jobs') $job
$answer = [ordered]@{ job = $job; started = $false; state = 'missing'; run_as = $null; reason = $null; output = ''; next_offset = 0; exit_code = $null; removed = $false }

function Get-SalveJobState([string] $Name) {
    $task = Get-ScheduledTask -TaskPath $taskPath -TaskName $Name -ErrorAction SilentlyContinue
    if (-not $task) { return 'missing' }
    $info = Get-ScheduledTaskInfo -TaskPath $taskPath -TaskName $Name
    # 267009 SCHED_S_TASK_RUNNING, 267011 SCHED_S_TASK_HAS_NOT_RUN (registered, not started yet).
    if ([string] $task.State -eq 'Running' -or $info.LastTaskResult -in @(267009, 267011)) { return 'running' }
    return 'finished'
}

# Unregister a task that is no longer running and delete its folder.
function Remove-SalveJob([string] $Name, [string] $State) {
    if ($State -eq 'finished') { Unregister-ScheduledTask -TaskPath $taskPath -TaskName $Name -Confirm:$false }
    if (Test-Path -LiteralPath $dir) { Remove-Item -LiteralPath $dir -Recurse -Force }
}

$utf8 = New-Object System.Text.UTF8Encoding $false

# Write $Text for the step only: the file gets its ACL (SYSTEM, Administrators, the task's
# account) while still empty, then the DPAPI-sealed (machine scope) text, base64.
function Save-SalveSecret([string] $Path, [string] $Text) {
    [IO.File]::WriteAllText($Path, '', $utf8)
    $acl = New-Object System.Security.AccessControl.FileSecurity
    $acl.SetAccessRuleProtection($true, $false)
    $readers = @(
        (New-Object System.Security.Principal.SecurityIdentifier 'S-1-5-18'),
        (New-Object System.Security.Principal.SecurityIdentifier 'S-1-5-32-544')
    )
    if ($SalveArgs.become_user) { $readers += New-Object System.Security.Principal.NTAccount ([string] $SalveArgs.become_user) }
    foreach ($who in $readers) {
        $acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule($who, 'FullControl', 'Allow')))
    }
    Set-Acl -LiteralPath $Path -AclObject $acl
    Add-Type -AssemblyName System.Security
    $sealed = [Security.Cryptography.ProtectedData]::Protect($utf8.GetBytes($Text), $null, [Security.Cryptography.DataProtectionScope]::LocalMachine)
    # WriteAllText truncates the existing file and keeps its ACL.
    [IO.File]::WriteAllText($Path, [Convert]::ToBase64String($sealed), $utf8)
}

if ($SalveArgs.action -eq 'start') {
    $answer.state = Get-SalveJobState $job
    if ($answer.state -ne 'missing') {
        $answer.reason = 'a task with this id exists already; nothing was started'
    } else {
        $null = New-Item -ItemType Directory -Force -Path $dir
        $text = $utf8.GetString([Convert]::FromBase64String([string] $SalveArgs.script))
        # With a BOM: Windows PowerShell 5.1 reads a .ps1 without one in the ANSI code page.
        [IO.File]::WriteAllText((Join-Path $dir 'script.ps1'), $text, (New-Object System.Text.UTF8Encoding $true))
        $runner = @'
$log = Join-Path $PSScriptRoot 'output.log'
$utf8 = New-Object System.Text.UTF8Encoding $false
$code = 0
try {
    & (Join-Path $PSScriptRoot 'script.ps1') *>&1 | ForEach-Object {
        [IO.File]::AppendAllText($log, ([string] $_) + "`r`n", $utf8)
    }
    if ($null -ne $LASTEXITCODE) { $code = $LASTEXITCODE }
} catch {
    [IO.File]::AppendAllText($log, ([string] $_) + "`r`n", $utf8)
    $code = 1
}
exit $code
'@
        [IO.File]::WriteAllText((Join-Path $dir 'run.ps1'), $runner, (New-Object System.Text.UTF8Encoding $true))
        if ($SalveArgs.share_credential) {
            $c = $SalveArgs.share_credential
            $stored = [ordered]@{ share = [string] $c.share; user = [string] $c.user; password = [string] $c.password }
            Save-SalveSecret (Join-Path $dir 'share.cred') (ConvertTo-Json -InputObject $stored -Compress)
        }
        if ($SalveArgs.download_token) {
            Save-SalveSecret (Join-Path $dir 'download.token') ([string] $SalveArgs.download_token)
        }
        $exe = Join-Path $env:SystemRoot 'System32\WindowsPowerShell\v1.0\powershell.exe'
        $action = New-ScheduledTaskAction -Execute $exe -Argument ('-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "{0}"' -f (Join-Path $dir 'run.ps1'))
        $settings = New-ScheduledTaskSettingsSet -ExecutionTimeLimit ([TimeSpan]::Zero) -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -MultipleInstances IgnoreNew -Priority 4
        if ($SalveArgs.become_user) {
            $null = Register-ScheduledTask -TaskPath $taskPath -TaskName $job -Action $action -Settings $settings -User ([string] $SalveArgs.become_user) -Password ([string] $SalveArgs.become_password) -RunLevel Highest
            $answer.run_as = [string] $SalveArgs.become_user
        } else {
            $principal = New-ScheduledTaskPrincipal -UserId 'S-1-5-18' -LogonType ServiceAccount -RunLevel Highest
            $null = Register-ScheduledTask -TaskPath $taskPath -TaskName $job -Action $action -Settings $settings -Principal $principal
            $answer.run_as = 'SYSTEM'
        }
        Start-ScheduledTask -TaskPath $taskPath -TaskName $job
        $answer.started = $true
        $answer.state = 'running'
        $waitMs = [int64] $SalveArgs.wait_ms
        $watch = [Diagnostics.Stopwatch]::StartNew()
        $pause = 25
        while ($answer.state -eq 'running' -and $watch.ElapsedMilliseconds -lt $waitMs) {
            Start-Sleep -Milliseconds ([int] [Math]::Min([int64] $pause, $waitMs - $watch.ElapsedMilliseconds))
            $pause = [Math]::Min($pause * 2, 250)
            $answer.state = Get-SalveJobState $job
        }
        if ($answer.state -eq 'finished') {
            $info = Get-ScheduledTaskInfo -TaskPath $taskPath -TaskName $job
            # LastTaskResult is a UInt32; exit codes like 0xC000013A are negative Int32s.
            $answer.exit_code = [BitConverter]::ToInt32([BitConverter]::GetBytes([uint32] $info.LastTaskResult), 0)
            $log = Join-Path $dir 'output.log'
            $whole = $true
            if (Test-Path -LiteralPath $log) {
                # The task's process has ended: output.log is complete. At most 4 MB here, as
                # job_poll reads per look; the rest is left for job_poll.
                $stream = [IO.File]::Open($log, [IO.FileMode]::Open, [IO.FileAccess]::Read, [IO.FileShare]::ReadWrite)
                try {
                    $size = [int] [Math]::Min($stream.Length, [int64] 4194304)
                    $buffer = New-Object -TypeName 'byte[]' -ArgumentList $size
                    $read = $stream.Read($buffer, 0, $buffer.Length)
                    $take = $read
                    if ($read -lt $stream.Length) {
                        $whole = $false
                        $take = 0
                        if ($read -gt 0) { $take = [Array]::LastIndexOf($buffer, [byte] 10, $read - 1) + 1 }
                    }
                    $answer.output = $utf8.GetString($buffer, 0, $take)
                    $answer.next_offset = $take
                } finally {
                    $stream.Dispose()
                }
            }
            if ($SalveArgs.remove_finished -and $whole) {
                Remove-SalveJob $job 'finished'
                $answer.removed = $true
            }
        }
    }
} elseif ($SalveArgs.action -eq 'remove') {
    $state = Get-SalveJobState $job
    if ($state -eq 'running') {
        $answer.state = 'running'
        $answer.reason = 'still running; a running task is never removed'
    } else {
        Remove-SalveJob $job $state
    }
}
Write-Output ('##salve-result## ' + (ConvertTo-Json -InputObject $answer -Depth 8 -Compress))
