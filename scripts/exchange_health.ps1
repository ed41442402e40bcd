# salve-script: exchange_health
# The health gate's view of this server (contract: HealthAnswer), read-only: its database copies
# (status, copy and replay queue lengths, content index), Test-ReplicationHealth and
# Test-ServiceHealth failures, components not Active, the transport queues, cluster node state
# and activation policy.

try {
    Add-PSSnapin Microsoft.Exchange.Management.PowerShell.SnapIn -ErrorAction Stop
} catch {
    [Console]::Error.WriteLine("the Exchange management snap-in could not be loaded: $($_.Exception.Message)")
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
