# salve-script: exchange_health
# The health gate's view of this server (contract: HealthAnswer), read-only: its database copies
# (status, copy and replay queue lengths, content index), Test-ReplicationHealth and
# Test-ServiceHealth failures, components not Active, the transport queues, cluster node state
# and activation policy.

# Exchange's own management shell, loaded the supported way, as Microsoft's CSS-Exchange scripts
# load it (Shared/Confirm-ExchangeShell.ps1): RemoteExchange.ps1 and Connect-ExchangeServer
# -Auto, a Remote PowerShell session to this server under RBAC (the snap-in would bypass RBAC).
# An Edge Transport server has no Remote PowerShell: there, the snap-ins its exShell.psc1 lists
# and Exchange.ps1. Either reaches Active Directory as this process's account, so salve runs
# this script where that account has network credentials (a scheduled task under `become`).
try {
    if (-not (Get-Command Get-ExchangeServer -ErrorAction SilentlyContinue)) {
        # Microsoft's scripts run with their own error preference, not the prelude's 'Stop'
        # (scripts/README.md, rule 3): a harmless error while they load must not stop them.
        $salvePreference = $ErrorActionPreference
        $ErrorActionPreference = 'Continue'
        try {
            if (Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\ExchangeServer\v15\EdgeTransportRole') {
                [xml] $exShell = Get-Content -LiteralPath (Join-Path $env:ExchangeInstallPath 'Bin\exShell.psc1') -ErrorAction Stop
                foreach ($snapIn in $exShell.PSConsoleFile.PSSnapIns.PSSnapIn) { Add-PSSnapin -Name $snapIn.Name -ErrorAction Stop }
                . (Join-Path $env:ExchangeInstallPath 'bin\Exchange.ps1')
            } else {
                . (Join-Path $env:ExchangeInstallPath 'bin\RemoteExchange.ps1')
                Connect-ExchangeServer -Auto -ClientApplication:ManagementShell
            }
        } finally {
            $ErrorActionPreference = $salvePreference
        }
    }
    if (-not (Get-Command Get-ExchangeServer -ErrorAction SilentlyContinue)) {
        $why = if ($Error.Count -gt 0) { [string] $Error[0] } else { 'Connect-ExchangeServer found no server' }
        throw "Exchange's management shell could not be loaded: $why"
    }
} catch {
    [Console]::Error.WriteLine([string] $_.Exception.Message)
    exit 1
}
$server = $env:COMPUTERNAME
$dag = $null
$policy = $null
$node = $null
$copies = @()
$contentIndexes = @()
$failedChecks = New-Object System.Collections.Generic.List[string]
$exchangeServer = Get-ExchangeServer -Identity $server
if ($exchangeServer.IsMailboxServer) {
    $mbx = Get-MailboxServer -Identity $server
    $status = @(Get-MailboxDatabaseCopyStatus -Server $server)
    $copies = @($status | ForEach-Object {
            [ordered]@{
                database             = [string] $_.DatabaseName
                active               = ([string] $_.Status -eq 'Mounted')
                status               = [string] $_.Status
                copy_queue_length    = [uint64] $_.CopyQueueLength
                replay_queue_length  = [uint64] $_.ReplayQueueLength
                activation_suspended = [bool] $_.ActivationSuspended
            }
        })
    # Exchange 2019 and SE have no content index state to report (Unknown/NotApplicable).
    $contentIndexes = @($status | Where-Object { [string] $_.ContentIndexState -notin @('Healthy', 'Unknown', 'NotApplicable', '') } |
            ForEach-Object { [string] $_.DatabaseName })
    if ($mbx.DatabaseAvailabilityGroup) {
        $dag = [string] $mbx.DatabaseAvailabilityGroup
        $policy = [string] $mbx.DatabaseCopyAutoActivationPolicy
        try { $node = [string] (Get-ClusterNode -Name $server -ErrorAction Stop).State } catch { $node = $null }
        foreach ($check in @(Test-ReplicationHealth -Identity $server -ErrorAction SilentlyContinue)) {
            if ([string] $check.Result -notmatch 'Passed') { $failedChecks.Add(([string] $check.Check) + ': ' + ([string] $check.Result)) }
        }
    }
}
foreach ($role in @(Test-ServiceHealth -Server $server -ErrorAction SilentlyContinue)) {
    foreach ($svc in @($role.ServicesNotRunning)) { $failedChecks.Add(([string] $role.Role) + ': ' + ([string] $svc) + ' not running') }
}
$components = @(Get-ServerComponentState -Identity $server | Where-Object {
        [string] $_.State -ne 'Active' -and [string] $_.Component -notin @('ForwardSyncDaemon', 'ProvisioningRps')
    } | ForEach-Object { [string] $_.Component })
# Get-Queue can fail for about a minute after a transport restart: then the length is unknown.
$transportQueue = $null
try {
    $transportQueue = [uint64] (@(Get-Queue -Server $server -ErrorAction Stop | Where-Object { [string] $_.DeliveryType -ne 'ShadowRedundancy' }) |
            Measure-Object -Property MessageCount -Sum).Sum
} catch { $transportQueue = $null }
$maxCopy = [uint64] 0
$maxReplay = [uint64] 0
foreach ($c in $copies) {
    if ($c.copy_queue_length -gt $maxCopy) { $maxCopy = $c.copy_queue_length }
    if ($c.replay_queue_length -gt $maxReplay) { $maxReplay = $c.replay_queue_length }
}
$answer = [ordered]@{
    dag                       = $dag
    copies                    = @($copies)
    all_copies_healthy        = (@($copies | Where-Object { $_.status -notin @('Mounted', 'Healthy') }).Count -eq 0)
    max_copy_queue_length     = $maxCopy
    max_replay_queue_length   = $maxReplay
    cluster_node_state        = $node
    activation_policy         = $policy
    unhealthy_content_indexes = @($contentIndexes)
    failed_checks             = @($failedChecks.ToArray())
    inactive_components       = @($components)
    transport_queue_length    = $transportQueue
}
Write-Output ('##salve-result## ' + (ConvertTo-Json -InputObject $answer -Depth 8 -Compress))
