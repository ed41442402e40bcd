# salve-script: exchange_health
# DAG copy health, queue lengths, cluster node state and activation policy of this server, for
# the gates between rolling steps (contract: HealthAnswer). Read-only.

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
$exchangeServer = Get-ExchangeServer -Identity $server
if ($exchangeServer.IsMailboxServer) {
    $mbx = Get-MailboxServer -Identity $server
    if ($mbx.DatabaseAvailabilityGroup) {
        $dag = [string] $mbx.DatabaseAvailabilityGroup
        $policy = [string] $mbx.DatabaseCopyAutoActivationPolicy
        try { $node = [string] (Get-ClusterNode -Name $server -ErrorAction Stop).State } catch { $node = $null }
        $copies = @(Get-MailboxDatabaseCopyStatus -Server $server | ForEach-Object {
                [ordered]@{
                    database             = [string] $_.DatabaseName
                    active               = ([string] $_.Status -eq 'Mounted')
                    status               = [string] $_.Status
                    copy_queue_length    = [uint64] $_.CopyQueueLength
                    replay_queue_length  = [uint64] $_.ReplayQueueLength
                    activation_suspended = [bool] $_.ActivationSuspended
                }
            })
    }
}
$maxCopy = [uint64] 0
$maxReplay = [uint64] 0
foreach ($c in $copies) {
    if ($c.copy_queue_length -gt $maxCopy) { $maxCopy = $c.copy_queue_length }
    if ($c.replay_queue_length -gt $maxReplay) { $maxReplay = $c.replay_queue_length }
}
$answer = [ordered]@{
    dag                     = $dag
    copies                  = @($copies)
    all_copies_healthy      = (@($copies | Where-Object { $_.status -notin @('Mounted', 'Healthy') }).Count -eq 0)
    max_copy_queue_length   = $maxCopy
    max_replay_queue_length = $maxReplay
    cluster_node_state      = $node
    activation_policy       = $policy
}
Write-Output ('##salve-result## ' + (ConvertTo-Json -InputObject $answer -Depth 8 -Compress))
